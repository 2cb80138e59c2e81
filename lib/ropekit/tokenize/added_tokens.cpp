#include "ropekit/tokenize/added_tokens_internal.hpp"

#include "ropekit/tokenize/utf8_internal.hpp"

namespace ropekit {

namespace {

bool whitespace_at(std::string_view text, std::size_t at, std::size_t& length) {
    return utf8::is_whitespace(utf8::decode(text, at, length));
}

// Start of the whitespace run that ends at `end`, not before `floor`.
std::size_t strip_left(std::string_view text, std::size_t end, std::size_t floor) {
    std::size_t start = end;
    while (start > floor) {
        std::size_t begin = start - 1;
        while (begin > floor && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
        std::size_t length = 0;
        if (!whitespace_at(text, begin, length)) break;
        start = begin;
    }
    return start;
}

std::size_t strip_right(std::string_view text, std::size_t begin) {
    std::size_t length = 0;
    while (begin < text.size() && whitespace_at(text, begin, length)) begin += length;
    return begin;
}

}  // namespace

void AddedTokens::add(const AddedToken& token) {
    const auto same = by_id_.find(token.id);
    if (same != by_id_.end()) {
        tokens_[same->second] = token;
    } else {
        by_id_[token.id] = tokens_.size();
        tokens_.push_back(token);
    }
    built_ = false;
}

bool AddedTokens::has_normalized() const {
    if (!built_) build();
    return has_normalized_;
}

const AddedToken* AddedTokens::find(TokenId id) const {
    const auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<TokenId> AddedTokens::find(std::string_view content) const {
    for (const AddedToken& t : tokens_) {
        if (t.content == content) return t.id;
    }
    return std::nullopt;
}

std::optional<TokenId> AddedTokens::largest_id() const {
    std::optional<TokenId> largest;
    for (const AddedToken& t : tokens_) {
        if (!largest || t.id > *largest) largest = t.id;
    }
    return largest;
}

void AddedTokens::Trie::insert(const std::string& content, int token) {
    int node = 0;
    for (char c : content) {
        const auto byte = static_cast<unsigned char>(c);
        int next = -1;
        for (const auto& [b, child] : nodes[node].children) {
            if (b == byte) next = child;
        }
        if (next < 0) {
            next = static_cast<int>(nodes.size());
            nodes[node].children.emplace_back(byte, next);
            nodes.emplace_back();
        }
        node = next;
    }
    nodes[node].token = token;
}

int AddedTokens::Trie::longest_at(std::string_view text, std::size_t at) const {
    int node = 0, found = -1;
    for (std::size_t i = at; i < text.size(); ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        int next = -1;
        for (const auto& [b, child] : nodes[node].children) {
            if (b == byte) {
                next = child;
                break;
            }
        }
        if (next < 0) break;
        node = next;
        if (nodes[node].token >= 0) found = nodes[node].token;
    }
    return found;
}

void AddedTokens::build() const {
    raw_ = Trie{};
    normalized_ = Trie{};
    has_normalized_ = false;
    for (std::size_t i = 0; i < tokens_.size(); ++i) {
        has_normalized_ = has_normalized_ || tokens_[i].normalized;
        if (tokens_[i].content.empty()) continue;
        (tokens_[i].normalized ? normalized_ : raw_)
            .insert(tokens_[i].content, static_cast<int>(i));
    }
    built_ = true;
}

void AddedTokens::split(std::string_view text, bool normalized, std::vector<Segment>& out) const {
    if (!built_) build();
    const Trie& trie = normalized ? normalized_ : raw_;
    std::size_t emitted = 0;  // end of the last segment
    for (std::size_t at = 0; at < text.size();) {
        const int index = trie.nodes[0].children.empty() ? -1 : trie.longest_at(text, at);
        if (index < 0) {
            ++at;
            continue;
        }
        const AddedToken& token = tokens_[static_cast<std::size_t>(index)];
        std::size_t begin = at, end = at + token.content.size();
        if (token.lstrip) begin = strip_left(text, begin, emitted);
        if (token.rstrip) end = strip_right(text, end);
        if (begin > emitted) out.push_back({text.substr(emitted, begin - emitted), std::nullopt});
        out.push_back({text.substr(begin, end - begin), token.id});
        emitted = at = end;
    }
    if (emitted < text.size()) out.push_back({text.substr(emitted), std::nullopt});
}

}  // namespace ropekit
