// What tokenizer_config.json changes: which tokens BOS and EOS are, and for the tokenizer classes
// whose transformers implementation rebuilds the post-processor from add_bos_token /
// add_eos_token, whether encode() adds them.
#include <array>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/tokenizer_internal.hpp"

namespace ropekit {

using Json = nlohmann::json;

namespace {

// "bos_token": "<s>", or {"content": "<s>", ...}, or null.
std::optional<std::string> token_name(const Json& config, const char* key) {
    if (!config.contains(key)) return std::nullopt;
    const Json& value = config[key];
    if (value.is_string()) return value.get<std::string>();
    if (value.is_object() && value.contains("content") && value["content"].is_string()) {
        return value["content"].get<std::string>();
    }
    return std::nullopt;
}

std::optional<TokenId> token_id(const Json& config, const char* key, const std::string& path,
                                const TokenizerImpl& impl) {
    const auto name = token_name(config, key);
    if (!name) return std::nullopt;
    const auto id = impl.find(*name);
    if (!id) throw data_error(path, key, "'" + *name + "' is not a token of the tokenizer");
    return id;
}

bool rebuilds_post_processor(const Json& config) {
    static const std::array<const char*, 6> classes = {
        "LlamaTokenizer",         "LlamaTokenizerFast", "CodeLlamaTokenizer",
        "CodeLlamaTokenizerFast", "GemmaTokenizer",     "GemmaTokenizerFast"};
    const std::string name = config.value("tokenizer_class", std::string());
    for (const char* c : classes) {
        if (name == c) return true;
    }
    return false;
}

std::optional<bool> flag(const Json& config, const char* key, const std::string& path) {
    if (!config.contains(key) || config[key].is_null()) return std::nullopt;
    if (!config[key].is_boolean()) throw data_error(path, key, "expected true or false");
    return config[key].get<bool>();
}

}  // namespace

void apply_tokenizer_config(const Json& config, const std::string& path, TokenizerImpl& impl) {
    if (!config.is_object()) throw data_error(path, "", "expected a JSON object");
    if (const auto bos = token_id(config, "bos_token", path, impl)) impl.bos = bos;
    if (const auto eos = token_id(config, "eos_token", path, impl)) impl.eos = eos;
    const bool rebuilds = rebuilds_post_processor(config);
    auto add_bos = flag(config, "add_bos_token", path);
    auto add_eos = flag(config, "add_eos_token", path);
    if (rebuilds) {
        add_bos = add_bos.value_or(true);
        add_eos = add_eos.value_or(false);
    }
    if (add_bos) {
        impl.prefix.clear();
        if (*add_bos && impl.bos) impl.prefix.push_back(*impl.bos);
    }
    if (add_eos) {
        impl.suffix.clear();
        if (*add_eos && impl.eos) impl.suffix.push_back(*impl.eos);
    }
}

}  // namespace ropekit
