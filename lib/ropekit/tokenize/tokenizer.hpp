#pragma once
// Text to token ids with a model's own tokenizer, as Hugging Face's tokenizers (the library behind
// transformers' fast tokenizers) computes them: tokenizer.json files (byte-level BPE,
// SentencePiece- style BPE with byte fallback, Unigram), tokenizer.model files (through
// libsentencepiece) and the vocabularies embedded in GGUF files (llama.cpp's "llama" and "gpt2"
// types). Anything these do not cover (another model type, normalizer, pre-tokenizer, decoder or
// post-processor) is refused by name, never approximated.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ropekit {

using TokenId = std::int32_t;

class TokenizerImpl;

class Tokenizer {
  public:
    // `path`: a Hugging Face model directory (tokenizer.json, else tokenizer.model, with
    // tokenizer_config.json when present), a tokenizer.json or tokenizer.model file, or a GGUF
    // file. Throws data_error(file, key, what) for anything missing or unsupported.
    static Tokenizer open(const std::string& path);
    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;
    ~Tokenizer();

    // transformers' tokenizer(text)["input_ids"]: special tokens in the text are matched, and the
    // post-processor's (or tokenizer_config.json's) BOS/EOS are added. `text` must be valid UTF-8
    // (data_error otherwise). Not thread-safe (models cache words).
    std::vector<TokenId> encode(std::string_view text) const;
    // The same without the added BOS/EOS.
    std::vector<TokenId> encode_plain(std::string_view text) const;
    // Tokens back to text through the tokenizer's decoder; special tokens are kept unless
    // `skip_special`. data_error for an id outside the vocabulary.
    std::string decode(const std::vector<TokenId>& ids, bool skip_special = false) const;

    std::size_t vocab_size() const;              // one past the largest id
    const std::vector<TokenId>& prefix() const;  // what encode() puts before the text (BOS)
    const std::vector<TokenId>& suffix() const;  // and after it (EOS when configured)
    std::optional<TokenId> bos() const;
    std::optional<TokenId> eos() const;
    // Bytes of text the token stands for: a byte-level or <0xNN> byte is 1, a SentencePiece "▁"
    // is the 1-byte space, an added special token 0.
    std::size_t token_bytes(TokenId id) const;
    // "tokenizer.json BPE (byte-level), 128256 tokens" and the file actually read.
    const std::string& description() const;
    const std::string& source() const;

  private:
    explicit Tokenizer(std::unique_ptr<TokenizerImpl> impl);
    std::unique_ptr<TokenizerImpl> impl_;
};

}  // namespace ropekit
