#pragma once
// Added tokens (special tokens such as <s>, and user-added ones such as Gemma's tab runs): found
// in the text before any normalization or splitting, leftmost first and longest among those
// starting at one place, as Hugging Face's AddedVocabulary does. Tokens marked "normalized" are
// looked for in the normalized text instead.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ropekit/tokenize/tokenizer.hpp"

namespace ropekit {

struct AddedToken {
    std::string content;
    TokenId id = 0;
    bool special = false;     // skipped by decode(skip_special = true)
    bool normalized = false;  // matched in the normalized text
    bool lstrip = false;      // the match takes the whitespace before it
    bool rstrip = false;      // and after it
};

// A part of the text: plain text, or one added token.
struct Segment {
    std::string_view text;
    std::optional<TokenId> token;
};

class AddedTokens {
  public:
    void add(const AddedToken& token);  // a later token with the same content replaces it
    bool empty() const { return tokens_.empty(); }
    bool has_normalized() const;
    const AddedToken* find(TokenId id) const;
    std::optional<TokenId> find(std::string_view content) const;
    std::optional<TokenId> largest_id() const;

    // Appends the segments of `text`, matching the normalized (or the other) tokens.
    void split(std::string_view text, bool normalized, std::vector<Segment>& out) const;

  private:
    struct Node {
        std::vector<std::pair<unsigned char, int>> children;
        int token = -1;  // index into tokens_
    };
    struct Trie {
        std::vector<Node> nodes{Node{}};
        void insert(const std::string& content, int token);
        // Index of the longest token that starts at text[at], or -1.
        int longest_at(std::string_view text, std::size_t at) const;
    };
    void build() const;

    std::vector<AddedToken> tokens_;
    std::unordered_map<TokenId, std::size_t> by_id_;
    mutable bool built_ = false, has_normalized_ = false;
    mutable Trie raw_, normalized_;
};

}  // namespace ropekit
