// Byte-pair encoding as Hugging Face's tokenizers applies it (models/bpe/word.rs): a piece
// starts as one symbol per character (or its <0xNN> bytes with byte fallback), then the
// lowest-ranked merge among adjacent symbols is applied, leftmost first, until none applies.
#include <array>
#include <queue>
#include <utility>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/model_internal.hpp"
#include "ropekit/tokenize/utf8_internal.hpp"

namespace ropekit {

namespace {

std::uint64_t pair_key(TokenId left, TokenId right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
}

struct MergeResult {
    std::uint32_t rank;
    TokenId id;
};

// Pair -> merge, open addressing with linear probing: the lookup in the inner loop of every merge.
class MergeTable {
  public:
    void reserve(std::size_t merges) {
        std::size_t capacity = 16;
        while (capacity < 2 * merges) capacity *= 2;
        slots_.assign(capacity, Slot{kEmpty, {}});
        shift_ = 64;
        for (std::size_t c = capacity; c > 1; c /= 2) --shift_;
    }
    void set(std::uint64_t key, MergeResult value) {
        std::size_t i = index(key);
        while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & (slots_.size() - 1);
        slots_[i] = {key, value};
    }
    const MergeResult* find(std::uint64_t key) const {
        for (std::size_t i = index(key);; i = (i + 1) & (slots_.size() - 1)) {
            if (slots_[i].key == key) return &slots_[i].value;
            if (slots_[i].key == kEmpty) return nullptr;
        }
    }

  private:
    static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};  // ids are < 2^31
    struct Slot {
        std::uint64_t key;
        MergeResult value;
    };
    std::size_t index(std::uint64_t key) const {
        return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
    }
    std::vector<Slot> slots_;
    int shift_ = 60;
};

struct Symbol {
    TokenId id;
    int prev, next;
    bool alive;
};

struct Candidate {
    std::uint32_t rank;
    int pos;
    TokenId id;
    // priority_queue pops the largest: make the lowest rank, then the leftmost, the largest.
    bool operator<(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
};

// Pieces longer than this are not cached (words are shorter; a whole SentencePiece-style line
// rarely repeats), nor are more than kCacheEntries.
constexpr std::size_t kCacheMaxBytes = 64, kCacheEntries = 200000;

class BpeModel : public Model {
  public:
    BpeModel(Vocab vocab, BpeOptions options) : options_(std::move(options)) {
        vocab_ = std::move(vocab);
        if (options_.unk_token) unk_id_ = vocab_.find(*options_.unk_token);
        if (options_.byte_fallback) {
            for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_.find(fmt::format("<0x{:02X}>", b));
        }
        for (int c = 0; c < 128; ++c) ascii_ids_[c] = vocab_.find(std::string(1, char(c)));
    }

    void add_merges(const std::vector<std::pair<std::string, std::string>>& merges,
                    const std::string& source) {
        merges_.reserve(merges.size());
        for (std::size_t rank = 0; rank < merges.size(); ++rank) {
            const auto& [a, b] = merges[rank];
            const auto left = vocab_.find(a), right = vocab_.find(b), merged = vocab_.find(a + b);
            if (!left || !right || !merged) {
                throw data_error(source, "merges",
                                 fmt::format("merge {} ('{}' '{}') names a token the vocabulary "
                                             "does not have",
                                             rank, a, b));
            }
            // A pair listed twice keeps its last rank, as in Hugging Face's map.
            merges_.set(pair_key(*left, *right), {static_cast<std::uint32_t>(rank), *merged});
        }
    }

    void tokenize(std::string_view piece, std::vector<TokenId>& out) const override {
        const bool cacheable = piece.size() < kCacheMaxBytes;
        if (cacheable) {
            key_.assign(piece);  // reused: no allocation per lookup
            const auto hit = cache_.find(key_);
            if (hit != cache_.end()) {
                out.insert(out.end(), hit->second.begin(), hit->second.end());
                return;
            }
        }
        if (options_.ignore_merges) {
            if (const auto id = vocab_.find(piece)) {
                out.push_back(*id);
                return;
            }
        }
        std::vector<Symbol> symbols = initial_symbols(piece);
        merge_all(symbols);
        const std::size_t first = out.size();
        for (const Symbol& s : symbols) {
            if (s.alive) out.push_back(s.id);
        }
        if (cacheable && cache_.size() < kCacheEntries) {
            cache_.emplace(std::string(piece),
                           std::vector<TokenId>(out.begin() + first, out.end()));
        }
    }

  private:
    void add_symbol(std::vector<Symbol>& symbols, TokenId id) const {
        const int index = static_cast<int>(symbols.size());
        symbols.push_back({id, index - 1, index + 1, true});
    }

    std::vector<Symbol> initial_symbols(std::string_view piece) const {
        std::vector<Symbol> symbols;
        symbols.reserve(piece.size());
        std::optional<TokenId> pending_unk;
        std::string decorated;
        const bool decorate =
            !options_.continuing_subword_prefix.empty() || !options_.end_of_word_suffix.empty();
        for (std::size_t at = 0; at < piece.size();) {
            const std::size_t length = utf8::char_length(piece, at);
            std::string_view text = piece.substr(at, length);
            const auto byte = static_cast<unsigned char>(text[0]);
            const std::optional<TokenId> fast = decorate     ? std::nullopt
                                                : byte < 128 ? ascii_ids_[byte]
                                                             : char_id(text);
            if (fast) {
                if (pending_unk) add_symbol(symbols, *std::exchange(pending_unk, std::nullopt));
                add_symbol(symbols, *fast);
                at += length;
                continue;
            }
            if (decorate) {
                decorated.assign(at > 0 ? options_.continuing_subword_prefix : "");
                decorated.append(text);
                if (at + length == piece.size()) decorated += options_.end_of_word_suffix;
                text = decorated;
            }
            at += length;
            if (const auto id = vocab_.find(text)) {
                if (pending_unk) add_symbol(symbols, *std::exchange(pending_unk, std::nullopt));
                add_symbol(symbols, *id);
                continue;
            }
            if (options_.byte_fallback && add_bytes(symbols, text)) continue;
            if (unk_id_) {
                if (pending_unk && !options_.fuse_unk) add_symbol(symbols, *pending_unk);
                pending_unk = unk_id_;
            }
        }
        if (pending_unk) add_symbol(symbols, *pending_unk);
        if (!symbols.empty()) symbols.back().next = -1;
        return symbols;
    }

    // The token of one non-ASCII character, through a small direct-mapped memo (a "▁" or "Ġ" is
    // looked up once, not at every space).
    std::optional<TokenId> char_id(std::string_view character) const {
        std::uint32_t key = 0;
        for (char c : character) key = key * 257 + static_cast<unsigned char>(c);
        CharMemo& memo = char_memo_[key % char_memo_.size()];
        if (memo.key != key || memo.length != character.size()) {
            memo = {key, character.size(), vocab_.find(character)};
        }
        return memo.id;
    }

    bool add_bytes(std::vector<Symbol>& symbols, std::string_view text) const {
        for (char c : text) {
            if (!byte_ids_[static_cast<unsigned char>(c)]) return false;
        }
        for (char c : text) add_symbol(symbols, *byte_ids_[static_cast<unsigned char>(c)]);
        return true;
    }

    const MergeResult* find_merge(TokenId left, TokenId right) const {
        return merges_.find(pair_key(left, right));
    }

    void push_candidate(std::priority_queue<Candidate>& queue, const std::vector<Symbol>& symbols,
                        int pos) const {
        const int next = symbols[pos].next;
        if (next < 0) return;
        if (const MergeResult* m = find_merge(symbols[pos].id, symbols[next].id)) {
            queue.push({m->rank, pos, m->id});
        }
    }

    void merge_all(std::vector<Symbol>& symbols) const {
        std::priority_queue<Candidate> queue;
        for (int i = 0; i + 1 < static_cast<int>(symbols.size()); ++i) {
            push_candidate(queue, symbols, i);
        }
        while (!queue.empty()) {
            const Candidate top = queue.top();
            queue.pop();
            Symbol& left = symbols[top.pos];
            if (!left.alive || left.next < 0) continue;
            const Symbol& right = symbols[left.next];
            const MergeResult* m = find_merge(left.id, right.id);
            if (!m || m->id != top.id) continue;  // stale: a neighbour changed since
            left.id = top.id;
            symbols[left.next].alive = false;
            left.next = right.next;
            if (left.next >= 0) symbols[left.next].prev = top.pos;
            if (left.prev >= 0) push_candidate(queue, symbols, left.prev);
            push_candidate(queue, symbols, top.pos);
        }
    }

    BpeOptions options_;
    std::optional<TokenId> unk_id_;
    std::optional<TokenId> byte_ids_[256];
    std::optional<TokenId> ascii_ids_[128];  // the single-character tokens, looked up once
    struct CharMemo {
        std::uint32_t key = 0;
        std::size_t length = 0;  // 0: empty slot
        std::optional<TokenId> id;
    };
    mutable std::array<CharMemo, 1024> char_memo_{};
    MergeTable merges_;
    mutable std::unordered_map<std::string, std::vector<TokenId>> cache_;
    mutable std::string key_;
};

}  // namespace

std::unique_ptr<Model> make_bpe(Vocab vocab,
                                const std::vector<std::pair<std::string, std::string>>& merges,
                                BpeOptions options, const std::string& source) {
    auto model = std::make_unique<BpeModel>(std::move(vocab), std::move(options));
    model->add_merges(merges, source);
    return model;
}

}  // namespace ropekit
