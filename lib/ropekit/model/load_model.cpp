#include "ropekit/model/load_model.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "ropekit/model/gguf_llama.hpp"
#include "ropekit/model/hf_llama.hpp"
#include "ropekit/model/llama2c.hpp"

namespace ropekit {

namespace {

// GGUF files start with the magic "GGUF"; llama2.c files with an int32 dim, which never spells it
// (it would be above 1.1e9).
bool is_gguf(const std::string& path) {
    char magic[4] = {};
    std::ifstream(path, std::ios::binary).read(magic, sizeof magic);
    return std::memcmp(magic, "GGUF", sizeof magic) == 0;
}

}  // namespace

LlamaModel load_model(const std::string& path) {
    if (std::filesystem::is_directory(path)) return load_hf_llama(path);
    if (is_gguf(path)) return load_gguf_llama(path);
    return load_llama2c(path);
}

}  // namespace ropekit
