#pragma once
// Hugging Face's tokenization pipeline (tokenizer.json, and GGUF vocabularies rebuilt as one):
// added tokens are split off the raw text, each remaining part is normalized, pre-tokenized into
// pieces, and each piece is run through the model; decoding maps ids to token strings and runs
// the decoder chain over them.
#include <memory>
#include <string>
#include <vector>

#include "ropekit/tokenize/added_tokens_internal.hpp"
#include "ropekit/tokenize/decoder_internal.hpp"
#include "ropekit/tokenize/model_internal.hpp"
#include "ropekit/tokenize/normalizer_internal.hpp"
#include "ropekit/tokenize/pre_tokenizer_internal.hpp"
#include "ropekit/tokenize/tokenizer_internal.hpp"

namespace ropekit {

class Pipeline : public TokenizerImpl {
  public:
    AddedTokens added;
    Normalizer normalizer;
    PreTokenizer pre_tokenizer;
    std::unique_ptr<Model> model;
    Decoder decoder;

    void encode(std::string_view text, std::vector<TokenId>& out) const override;
    std::string decode(const std::vector<TokenId>& ids, bool skip_special) const override;
    std::size_t vocab_size() const override;
    bool has_id(TokenId id) const override;
    std::size_t token_bytes(TokenId id) const override;
    std::optional<TokenId> find(const std::string& token) const override;

  private:
    void encode_normalized(std::string_view text, bool at_start, std::vector<TokenId>& out) const;
    mutable std::vector<std::string> pieces_;  // scratch
};

}  // namespace ropekit
