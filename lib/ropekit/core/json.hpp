#pragma once
// Reading JSON files (config.json, tokenizer files, safetensors indexes) with one-line errors.
#include <string>

#include <nlohmann/json.hpp>

namespace ropekit {

// Parses a whole file, keeping key order. Throws data_error(path, "", "cannot open" or
// "not valid JSON: ...") with nlohmann's message shortened to its text.
nlohmann::ordered_json read_json_file(const std::string& path);

}  // namespace ropekit
