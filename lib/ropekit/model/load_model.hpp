#pragma once
// Opens any checkpoint rope-dump understands: a Hugging Face Llama-architecture directory
// (config.json + *.safetensors), a llama-architecture GGUF file (recognised by its magic), or a
// llama2.c legacy .bin file.
#include <string>

#include "ropekit/model/llama_model.hpp"

namespace ropekit {

LlamaModel load_model(const std::string& path);

}  // namespace ropekit
