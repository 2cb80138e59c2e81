#pragma once
// Reading JSON files (config.json, tokenizer files, safetensors indexes) with one-line errors.
#include <string>

#include <nlohmann/json.hpp>

#include "ropekit/core/error.hpp"

namespace ropekit {

// Parses a whole file, keeping key order. Throws data_error(path, "", "cannot open" or
// "not valid JSON: ...") with nlohmann's message shortened to its text.
nlohmann::ordered_json read_json_file(const std::string& path);
// The same without key order, for files with very large objects (a tokenizer.json vocabulary of
// 262k entries): ordered_json inserts each key after a linear search, which is quadratic.
nlohmann::json read_json_file_unordered(const std::string& path);

// nlohmann's message without its "[json.exception.type_error.302] " prefix.
std::string json_error_text(const nlohmann::json::exception& e);

// Runs read(), which interprets JSON that came from `file`. A value of the wrong type that the
// reader does not check itself (nlohmann's type_error from get<T>() or value()) becomes a
// one-line data_error naming the file instead of an internal error.
template <class Read>
auto interpret_json(const std::string& file, Read&& read) -> decltype(read()) {
    try {
        return read();
    } catch (const nlohmann::json::type_error& e) {
        throw data_error(file, "", "a value of the wrong JSON type: " + json_error_text(e));
    }
}

// object[key] when it is a string, `fallback` when the key is absent or null (or `object` is not
// an object); data_error(file, key, "expected a string ...") for any other type. nlohmann's own
// value(key, fallback) throws its type_error there, which a tool can only report as an internal
// error (found by fuzz_hf_rope: "model_type": 500000.0).
template <class Json>
std::string string_or(const Json& object, const std::string& key, const std::string& fallback,
                      const std::string& file) {
    if (!object.is_object() || !object.contains(key) || object[key].is_null()) return fallback;
    if (!object[key].is_string()) {
        throw data_error(file, key, "expected a string, found " + object[key].dump());
    }
    return object[key].template get<std::string>();
}

// The same for a number.
template <class Json>
double number_or(const Json& object, const std::string& key, double fallback,
                 const std::string& file) {
    if (!object.is_object() || !object.contains(key) || object[key].is_null()) return fallback;
    if (!object[key].is_number()) {
        throw data_error(file, key, "expected a number, found " + object[key].dump());
    }
    return object[key].template get<double>();
}

}  // namespace ropekit
