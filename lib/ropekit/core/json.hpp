#pragma once
// Reading JSON files (config.json, tokenizer files, safetensors indexes) with one-line errors.
#include <string>

#include <nlohmann/json.hpp>

namespace ropekit {

// Parses a whole file, keeping key order. Throws data_error(path, "", "cannot open" or
// "not valid JSON: ...") with nlohmann's message shortened to its text.
nlohmann::ordered_json read_json_file(const std::string& path);
// The same without key order, for files with very large objects (a tokenizer.json vocabulary of
// 262k entries): ordered_json inserts each key after a linear search, which is quadratic.
nlohmann::json read_json_file_unordered(const std::string& path);

}  // namespace ropekit
