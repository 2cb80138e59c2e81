#include "ropekit/dump/dump_files.hpp"

#include <algorithm>
#include <fstream>
#include <optional>
#include <variant>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ropekit/core/error.hpp"
#include "ropekit/hdf5/attr_value.hpp"

namespace ropekit {
namespace {

std::string trimmed(const std::string& s) {
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string::npos) return "";
    return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

void append_list(const std::string& list, std::vector<std::string>& paths) {
    std::ifstream file(list);
    if (!file) throw data_error(list, "", "cannot read this list of dump files");
    std::size_t before = paths.size();
    for (std::string line; std::getline(file, line);) {
        line = trimmed(line);
        if (!line.empty() && line.front() != '#') paths.push_back(line);
    }
    if (paths.size() == before) throw data_error(list, "", "expected dump paths, found none");
}

std::string attr_text(const H5Input& in, const char* name) {
    const std::optional<AttrValue> value = in.attr("/", name);
    if (!value) return "(absent)";
    return std::visit([](const auto& v) { return fmt::format("{}", v); }, *value);
}

void check_attributes(const H5Input& first, const H5Input& other) {
    for (const char* name : {"rope_theta", "rope_layout", "rotary_dim", "bos", "p", "attn_scale"}) {
        const std::string a = attr_text(first, name), b = attr_text(other, name);
        if (a != b) {
            throw data_error(other.name(), std::string("/@") + name,
                             fmt::format("{}, but {} has {} (shards of one dump must agree)", b,
                                         first.name(), a));
        }
    }
}

void check_datasets(const H5Input& first, const H5Input& other) {
    std::vector<std::string> a = first.dataset_names(), b = other.dataset_names();
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    std::vector<std::string> only_a, only_b;
    std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only_a));
    std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(only_b));
    if (!only_a.empty()) {
        throw data_error(other.name(), only_a.front(),
                         fmt::format("missing, but {} has it (shards of one dump must have the "
                                     "same hooks)",
                                     first.name()));
    }
    if (!only_b.empty()) {
        throw data_error(other.name(), only_b.front(),
                         fmt::format("present, but {} has no such dataset (shards of one dump "
                                     "must have the same hooks)",
                                     first.name()));
    }
}

}  // namespace

std::vector<std::string> expand_dump_paths(const std::vector<std::string>& args) {
    std::vector<std::string> paths;
    for (const std::string& arg : args) {
        if (arg.size() > 1 && arg.front() == '@') {
            append_list(arg.substr(1), paths);
        } else {
            paths.push_back(arg);
        }
    }
    if (paths.empty()) throw usage_error("expected at least one dump file");
    if (paths.size() > 1 && std::find(paths.begin(), paths.end(), "-") != paths.end()) {
        throw usage_error("'-' (standard input) must be the only dump file");
    }
    return paths;
}

std::vector<H5Input> open_dump_files(const std::vector<std::string>& paths) {
    std::vector<H5Input> files;
    files.reserve(paths.size());
    for (const std::string& path : paths) files.push_back(H5Input::open(path));
    return files;
}

void check_shards_agree(const std::vector<const H5Input*>& shards) {
    for (std::size_t i = 1; i < shards.size(); ++i) {
        check_attributes(*shards.front(), *shards[i]);
        check_datasets(*shards.front(), *shards[i]);
    }
}

}  // namespace ropekit
