// tokenizer.model files through Debian's libsentencepiece (the library transformers' slow
// LlamaTokenizer and GemmaTokenizer call), rather than a reimplementation.
#include <sentencepiece_processor.h>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/tokenizer_internal.hpp"

namespace ropekit {

namespace {

class SentencePieceTokenizer : public TokenizerImpl {
  public:
    explicit SentencePieceTokenizer(const std::string& path) {
        const auto status = processor_.Load(path);
        if (!status.ok()) {
            throw data_error(path, "",
                             "not a tokenizer.json, GGUF or SentencePiece model (" +
                                 std::string(status.message()) + ")");
        }
        source = path;
        description = fmt::format("SentencePiece model, {} pieces", processor_.GetPieceSize());
        if (processor_.bos_id() >= 0) {
            bos = processor_.bos_id();
            prefix.push_back(*bos);  // transformers' LlamaTokenizer: add_bos_token defaults to true
        }
        if (processor_.eos_id() >= 0) eos = processor_.eos_id();
    }

    void encode(std::string_view text, std::vector<TokenId>& out) const override {
        std::vector<int> ids;
        const auto status = processor_.Encode(std::string(text), &ids);
        if (!status.ok()) throw data_error(source, "", std::string(status.message()));
        out.insert(out.end(), ids.begin(), ids.end());
    }

    std::string decode(const std::vector<TokenId>& ids, bool skip_special) const override {
        std::vector<int> kept;
        for (TokenId id : ids) {
            if (!has_id(id))
                throw data_error("", "", fmt::format("token id {} is outside the vocabulary", id));
            if (!(skip_special && processor_.IsControl(id))) kept.push_back(id);
        }
        std::string text;
        const auto status = processor_.Decode(kept, &text);
        if (!status.ok()) throw data_error(source, "", std::string(status.message()));
        return text;
    }

    std::size_t vocab_size() const override {
        return static_cast<std::size_t>(processor_.GetPieceSize());
    }
    bool has_id(TokenId id) const override { return id >= 0 && id < processor_.GetPieceSize(); }

    std::size_t token_bytes(TokenId id) const override {
        if (processor_.IsControl(id) || processor_.IsUnknown(id)) return 0;
        if (processor_.IsByte(id)) return 1;
        const std::string& piece = processor_.IdToPiece(id);
        std::size_t metaspaces = 0;
        for (std::size_t at = 0; (at = piece.find("\u2581", at)) != std::string::npos; at += 3) {
            ++metaspaces;
        }
        return piece.size() - 2 * metaspaces;
    }

    std::optional<TokenId> find(const std::string& token) const override {
        const int id = processor_.PieceToId(token);
        if (id == processor_.unk_id() && token != processor_.IdToPiece(id)) return std::nullopt;
        return id;
    }

  private:
    sentencepiece::SentencePieceProcessor processor_;
};

}  // namespace

std::unique_ptr<TokenizerImpl> load_sentencepiece(const std::string& path) {
    return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace ropekit
