#pragma once
// What every kind of tokenizer implements behind Tokenizer, and the loaders that make them.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropekit/tokenize/tokenizer.hpp"

namespace ropekit {

class TokenizerImpl {
  public:
    virtual ~TokenizerImpl() = default;
    // Appends the ids of `text` without the post-processor's BOS/EOS.
    virtual void encode(std::string_view text, std::vector<TokenId>& out) const = 0;
    virtual std::string decode(const std::vector<TokenId>& ids, bool skip_special) const = 0;
    virtual std::size_t vocab_size() const = 0;
    virtual bool has_id(TokenId id) const = 0;
    virtual std::size_t token_bytes(TokenId id) const = 0;
    // The id of a token string (added tokens included), for tokenizer_config.json's names.
    virtual std::optional<TokenId> find(const std::string& token) const = 0;

    std::vector<TokenId> prefix, suffix;
    std::optional<TokenId> bos, eos;
    std::string description, source;
};

std::unique_ptr<TokenizerImpl> load_tokenizer_json(const std::string& path);
// tokenizer.model through libsentencepiece; BOS first, as transformers' LlamaTokenizer adds it.
std::unique_ptr<TokenizerImpl> load_sentencepiece(const std::string& path);
// The tokenizer.ggml.* metadata of a GGUF file.
std::unique_ptr<TokenizerImpl> load_gguf_vocab(const std::string& path);

// tokenizer_config.json's say over BOS/EOS: its bos_token / eos_token name them, and explicit
// add_bos_token / add_eos_token (default true / false for the Llama and Gemma tokenizer classes,
// whose transformers classes rebuild the post-processor from them) replace prefix and suffix.
// tokenizer.json's "post_processor" (TemplateProcessing, ByteLevel, RobertaProcessing,
// BertProcessing, Sequence): the ids it puts before and after a single text.
void read_post_processor(const nlohmann::json& spec, const std::string& source,
                         const TokenizerImpl& impl, std::vector<TokenId>& prefix,
                         std::vector<TokenId>& suffix);

void apply_tokenizer_config(const nlohmann::json& config, const std::string& config_path,
                            TokenizerImpl& impl);

}  // namespace ropekit
