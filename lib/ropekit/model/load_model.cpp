#include "ropekit/model/load_model.hpp"

#include <filesystem>

#include "ropekit/model/hf_llama.hpp"
#include "ropekit/model/llama2c.hpp"

namespace ropekit {

LlamaModel load_model(const std::string& path) {
    if (std::filesystem::is_directory(path)) return load_hf_llama(path);
    return load_llama2c(path);
}

}  // namespace ropekit
