#include "ropekit/tokenize/pipeline_internal.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/byte_level_internal.hpp"

namespace ropekit {

void Pipeline::encode_normalized(std::string_view text, bool at_start,
                                 std::vector<TokenId>& out) const {
    pre_tokenizer.split(text, at_start, pieces_);
    for (const std::string& piece : pieces_) model->tokenize(piece, out);
}

void Pipeline::encode(std::string_view text, std::vector<TokenId>& out) const {
    std::vector<Segment> segments;
    if (added.empty()) {
        segments.push_back({text, std::nullopt});
    } else {
        added.split(text, false, segments);
    }
    bool at_start = true;
    for (const Segment& segment : segments) {
        if (segment.token) {
            out.push_back(*segment.token);
            at_start = false;
            continue;
        }
        const std::string normalized =
            normalizer.empty() ? std::string(segment.text) : normalizer.apply(segment.text);
        if (!added.has_normalized()) {
            encode_normalized(normalized, at_start, out);
        } else {
            std::vector<Segment> inner;
            added.split(normalized, true, inner);
            for (std::size_t i = 0; i < inner.size(); ++i) {
                if (inner[i].token) {
                    out.push_back(*inner[i].token);
                } else {
                    encode_normalized(inner[i].text, at_start && i == 0, out);
                }
            }
        }
        at_start = false;
    }
}

std::string Pipeline::decode(const std::vector<TokenId>& ids, bool skip_special) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (TokenId id : ids) {
        if (const AddedToken* a = added.find(id)) {
            if (!(skip_special && a->special)) tokens.push_back(a->content);
        } else if (model->vocab().has(id)) {
            tokens.emplace_back(model->vocab().token(id));
        } else {
            throw data_error("", "", fmt::format("token id {} is outside the vocabulary", id));
        }
    }
    return decoder.decode(std::move(tokens));
}

std::size_t Pipeline::vocab_size() const {
    // Added tokens may lie past the model's vocabulary (Gemma 3's <image_soft_token>).
    const auto largest = added.largest_id();
    return std::max(model->vocab().size(), largest ? std::size_t(*largest) + 1 : 0);
}

bool Pipeline::has_id(TokenId id) const {
    return added.find(id) || model->vocab().has(id);
}

std::optional<TokenId> Pipeline::find(const std::string& token) const {
    if (const auto id = added.find(token)) return id;
    return model->vocab().find(token);
}

std::size_t Pipeline::token_bytes(TokenId id) const {
    if (const AddedToken* a = added.find(id)) return a->special ? 0 : a->content.size();
    const std::string_view token = model->vocab().token(id);
    if (pre_tokenizer.is_byte_level()) return byte_level::byte_count(token);
    if (token.size() == 6 && token.compare(0, 3, "<0x") == 0 && token[5] == '>') return 1;
    std::size_t metaspaces = 0;
    for (std::size_t at = 0; (at = token.find("\u2581", at)) != std::string_view::npos; at += 3) {
        ++metaspaces;
    }
    return token.size() - 2 * metaspaces;
}

}  // namespace ropekit
