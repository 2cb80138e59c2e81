#include "ropekit/core/json.hpp"

#include <fstream>
#include <sstream>

#include "ropekit/core/error.hpp"

namespace ropekit {

std::string json_error_text(const nlohmann::json::exception& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, ...": keep it short.
    std::string what = e.what();
    const auto bracket = what.find("] ");
    if (bracket != std::string::npos) what = what.substr(bracket + 2);
    return what;
}

namespace {

template <class Json>
Json parse_json_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw data_error(path, "", "cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    try {
        return Json::parse(text.str());
    } catch (const nlohmann::json::exception& e) {
        throw data_error(path, "", "not valid JSON: " + json_error_text(e));
    }
}

}  // namespace

nlohmann::ordered_json read_json_file(const std::string& path) {
    return parse_json_file<nlohmann::ordered_json>(path);
}

nlohmann::json read_json_file_unordered(const std::string& path) {
    return parse_json_file<nlohmann::json>(path);
}

}  // namespace ropekit
