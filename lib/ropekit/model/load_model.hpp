#pragma once
// Opens any checkpoint rope-dump understands: a llama2.c legacy .bin file, or a Hugging Face
// Llama-architecture directory (config.json + *.safetensors).
#include <string>

#include "ropekit/model/llama_model.hpp"

namespace ropekit {

LlamaModel load_model(const std::string& path);

}  // namespace ropekit
