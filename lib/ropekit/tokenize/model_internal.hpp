#pragma once
// The models that turn one pre-tokenized piece into ids: BPE (merges by rank, byte fallback),
// Unigram (Viterbi over piece scores) and llama.cpp's score-ordered merging for GGUF "llama"
// vocabularies. All share a Vocab; the tokenizer (pipeline_internal.hpp) calls them per piece.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ropekit/tokenize/tokenizer.hpp"

namespace ropekit {

class Vocab {
  public:
    // Sets the token of id `id` (ids may come in any order; gaps stay empty strings). Returns
    // false if `token` already has another id, which keeps it for find().
    bool add(const std::string& token, TokenId id);
    std::optional<TokenId> find(std::string_view token) const;
    std::string_view token(TokenId id) const;  // "" for an id with no token
    bool has(TokenId id) const;
    std::size_t size() const { return tokens_.size(); }  // one past the largest id

  private:
    // Lookups by string_view allocate nothing: the keys view the strings in storage_, which a
    // deque never moves.
    std::deque<std::string> storage_;
    std::unordered_map<std::string_view, TokenId> ids_;
    std::vector<const std::string*> tokens_;  // nullptr for ids with no token
};

class Model {
  public:
    virtual ~Model() = default;
    // Appends the ids of one piece (never empty). Not thread-safe: models may cache.
    virtual void tokenize(std::string_view piece, std::vector<TokenId>& out) const = 0;
    const Vocab& vocab() const { return vocab_; }
    Vocab& vocab() { return vocab_; }

  protected:
    Vocab vocab_;
};

struct BpeOptions {
    std::optional<std::string> unk_token;
    bool fuse_unk = false;
    bool byte_fallback = false;  // characters outside the vocabulary as <0xNN> tokens
    bool ignore_merges = false;  // a piece that is a whole vocabulary entry is that token
    std::string continuing_subword_prefix, end_of_word_suffix;
};

// `merges` in rank order, each a pair of tokens; throws data_error(source, "merges", ...) for a
// merge whose parts or result are not in the vocabulary.
std::unique_ptr<Model> make_bpe(Vocab vocab,
                                const std::vector<std::pair<std::string, std::string>>& merges,
                                BpeOptions options, const std::string& source);

struct UnigramOptions {
    std::optional<TokenId> unk_id;
    bool byte_fallback = false;
};
// `scores[id]` is the log-probability of token id.
std::unique_ptr<Model> make_unigram(Vocab vocab, std::vector<double> scores,
                                    UnigramOptions options);

// llama.cpp's SentencePiece tokenizer for GGUF "llama" vocabularies: start from characters, merge
// the adjacent pair whose concatenation is the highest-scoring vocabulary entry (leftmost on
// ties) until none is, then characters still outside the vocabulary as <0xNN> tokens (or unk).
std::unique_ptr<Model> make_score_merge(Vocab vocab, std::vector<float> scores,
                                        std::optional<TokenId> unk_id);

}  // namespace ropekit
