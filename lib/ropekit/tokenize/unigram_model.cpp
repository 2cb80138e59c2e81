// Unigram as Hugging Face's tokenizers applies it (models/unigram/model.rs, encode_optimized):
// the Viterbi path of highest total score over vocabulary pieces, a character outside every piece
// scoring (lowest score - 10) as unk; adjacent unk spans are fused, then looked up again or
// spelled as <0xNN> bytes with byte fallback.
#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/model_internal.hpp"
#include "ropekit/tokenize/utf8_internal.hpp"

namespace ropekit {

namespace {

constexpr double kUnkPenalty = 10.0;

struct Span {
    std::size_t begin, end;
    bool unk;
};

struct PathNode {
    bool reached = false;
    std::size_t starts_at = 0;
    TokenId id = 0;
    double score = 0;
};

class UnigramModel : public Model {
  public:
    UnigramModel(Vocab vocab, std::vector<double> scores, UnigramOptions options)
        : scores_(std::move(scores)), options_(options) {
        vocab_ = std::move(vocab);
        min_score_ = std::numeric_limits<double>::infinity();
        for (double s : scores_) min_score_ = std::min(min_score_, s);
        for (std::size_t id = 0; id < vocab_.size(); ++id) {
            max_piece_bytes_ = std::max(max_piece_bytes_, vocab_.token(TokenId(id)).size());
        }
    }

    void tokenize(std::string_view piece, std::vector<TokenId>& out) const override {
        const std::vector<PathNode> best = viterbi(piece);
        if (!best.back().reached) {
            throw data_error("", "",
                             "the Unigram vocabulary has no unk token for a character it "
                             "cannot spell");
        }
        std::vector<Span> spans;  // from the end backwards
        for (std::size_t end = piece.size(); end > 0; end = best[end].starts_at) {
            const bool unk = is_unk(best[end].id);
            if (unk && !spans.empty() && spans.back().unk) {
                spans.back().begin = best[end].starts_at;
            } else {
                spans.push_back({best[end].starts_at, end, unk});
            }
        }
        for (auto span = spans.rbegin(); span != spans.rend(); ++span) {
            emit(piece.substr(span->begin, span->end - span->begin), out);
        }
    }

  private:
    bool is_unk(TokenId id) const { return options_.unk_id && id == *options_.unk_id; }

    std::vector<PathNode> viterbi(std::string_view piece) const {
        std::vector<PathNode> best(piece.size() + 1);
        best[0].reached = true;
        const double unk_score = min_score_ - kUnkPenalty;
        for (std::size_t start = 0; start < piece.size();) {
            const double here = best[start].score;
            const std::size_t char_bytes = utf8::char_length(piece, start);
            bool single_char = false;
            const std::size_t longest = std::min(max_piece_bytes_, piece.size() - start);
            for (std::size_t length = 1; length <= longest; ++length) {
                const auto id = vocab_.find(piece.substr(start, length));
                if (!id) continue;
                relax(best[start + length], start, *id, here + scores_[std::size_t(*id)]);
                single_char = single_char || length == char_bytes;
            }
            if (!single_char && options_.unk_id) {
                relax(best[start + char_bytes], start, *options_.unk_id, here + unk_score);
            }
            start += char_bytes;
        }
        return best;
    }

    static void relax(PathNode& node, std::size_t start, TokenId id, double score) {
        if (!node.reached || score > node.score) node = {true, start, id, score};
    }

    void emit(std::string_view text, std::vector<TokenId>& out) const {
        if (const auto id = vocab_.find(text)) {
            out.push_back(*id);
        } else if (!(options_.byte_fallback && add_bytes(text, out))) {
            out.push_back(*options_.unk_id);
        }
    }

    bool add_bytes(std::string_view text, std::vector<TokenId>& out) const {
        std::vector<TokenId> bytes;
        for (char c : text) {
            const auto id = vocab_.find(fmt::format("<0x{:02X}>", static_cast<unsigned char>(c)));
            if (!id) return false;
            bytes.push_back(*id);
        }
        out.insert(out.end(), bytes.begin(), bytes.end());
        return true;
    }

    std::vector<double> scores_;
    UnigramOptions options_;
    double min_score_ = 0;
    std::size_t max_piece_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Model> make_unigram(Vocab vocab, std::vector<double> scores,
                                    UnigramOptions options) {
    return std::make_unique<UnigramModel>(std::move(vocab), std::move(scores), options);
}

}  // namespace ropekit
