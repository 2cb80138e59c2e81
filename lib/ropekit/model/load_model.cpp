#include "ropekit/model/load_model.hpp"

#include "ropekit/formats/gguf.hpp"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "ropekit/model/gguf_llama.hpp"
#include "ropekit/model/hf_llama.hpp"
#include "ropekit/model/llama2c.hpp"

namespace ropekit {

LlamaModel load_model(const std::string& path) {
    if (std::filesystem::is_directory(path)) return load_hf_llama(path);
    if (starts_as_gguf(path)) return load_gguf_llama(path);
    return load_llama2c(path);
}

}  // namespace ropekit
