// llama.cpp's SentencePiece tokenizer (llm_tokenizer_spm) for GGUF "llama" vocabularies, which
// carry piece scores instead of merges: characters merge pairwise, the pair whose concatenation
// is the best-scoring vocabulary entry first (the leftmost among equal scores).
#include <queue>

#include <fmt/format.h>

#include "ropekit/tokenize/model_internal.hpp"
#include "ropekit/tokenize/utf8_internal.hpp"

namespace ropekit {

namespace {

struct Symbol {
    std::size_t begin, length;
    int prev, next;
};

struct Bigram {
    int left, right;
    float score;
    std::size_t length;
    // priority_queue pops the largest: highest score, then the leftmost.
    bool operator<(const Bigram& o) const {
        return score != o.score ? score < o.score : left > o.left;
    }
};

class ScoreMergeModel : public Model {
  public:
    ScoreMergeModel(Vocab vocab, std::vector<float> scores, std::optional<TokenId> unk_id)
        : scores_(std::move(scores)), unk_id_(unk_id) {
        vocab_ = std::move(vocab);
        for (int b = 0; b < 256; ++b) byte_ids_[b] = vocab_.find(fmt::format("<0x{:02X}>", b));
    }

    void tokenize(std::string_view piece, std::vector<TokenId>& out) const override {
        std::vector<Symbol> symbols;
        for (std::size_t at = 0; at < piece.size();) {
            const std::size_t n = utf8::char_length(piece, at);
            const int index = static_cast<int>(symbols.size());
            symbols.push_back({at, n, index - 1, at + n == piece.size() ? -1 : index + 1});
            at += n;
        }
        std::priority_queue<Bigram> queue;
        for (int i = 1; i < static_cast<int>(symbols.size()); ++i) {
            try_add(piece, symbols, i - 1, i, queue);
        }
        while (!queue.empty()) {
            const Bigram top = queue.top();
            queue.pop();
            Symbol& left = symbols[top.left];
            Symbol& right = symbols[top.right];
            if (left.length == 0 || right.length == 0 || left.length + right.length != top.length) {
                continue;  // one side was merged elsewhere since
            }
            left.length += right.length;
            right.length = 0;
            left.next = right.next;
            if (right.next >= 0) symbols[right.next].prev = top.left;
            try_add(piece, symbols, left.prev, top.left, queue);
            try_add(piece, symbols, top.left, left.next, queue);
        }
        for (int i = 0; i != -1 && !symbols.empty(); i = symbols[i].next) {
            emit(piece.substr(symbols[i].begin, symbols[i].length), out);
        }
    }

  private:
    void try_add(std::string_view piece, const std::vector<Symbol>& symbols, int left, int right,
                 std::priority_queue<Bigram>& queue) const {
        if (left < 0 || right < 0) return;
        const std::size_t length = symbols[left].length + symbols[right].length;
        const auto id = vocab_.find(piece.substr(symbols[left].begin, length));
        if (id) queue.push({left, right, scores_[static_cast<std::size_t>(*id)], length});
    }

    // Every merged symbol is a vocabulary entry; a single character that is not one is spelled
    // as <0xNN> byte tokens (unk where those are missing). llama.cpp's resegment() recursion
    // into the pair a symbol was formed from never runs for that reason, so it is left out.
    void emit(std::string_view text, std::vector<TokenId>& out) const {
        if (const auto id = vocab_.find(text)) {
            out.push_back(*id);
            return;
        }
        for (char c : text) {
            const auto byte = byte_ids_[static_cast<unsigned char>(c)];
            if (byte) {
                out.push_back(*byte);
            } else if (unk_id_) {
                out.push_back(*unk_id_);
            }
        }
    }

    std::vector<float> scores_;
    std::optional<TokenId> unk_id_;
    std::optional<TokenId> byte_ids_[256];
};

}  // namespace

std::unique_ptr<Model> make_score_merge(Vocab vocab, std::vector<float> scores,
                                        std::optional<TokenId> unk_id) {
    return std::make_unique<ScoreMergeModel>(std::move(vocab), std::move(scores), unk_id);
}

}  // namespace ropekit
