#include "ropekit/tokenize/model_internal.hpp"

namespace ropekit {

bool Vocab::add(const std::string& token, TokenId id) {
    const auto [it, inserted] = ids_.emplace(token, id);
    const bool unique = inserted || it->second == id;
    const auto index = static_cast<std::size_t>(id);
    if (index >= tokens_.size()) {
        tokens_.resize(index + 1);
        present_.resize(index + 1, false);
    }
    tokens_[index] = token;
    present_[index] = true;
    return unique;
}

std::optional<TokenId> Vocab::find(std::string_view token) const {
    const auto it = ids_.find(std::string(token));
    if (it == ids_.end()) return std::nullopt;
    return it->second;
}

const std::string& Vocab::token(TokenId id) const {
    static const std::string none;
    return has(id) ? tokens_[static_cast<std::size_t>(id)] : none;
}

bool Vocab::has(TokenId id) const {
    return id >= 0 && static_cast<std::size_t>(id) < present_.size() &&
           present_[static_cast<std::size_t>(id)];
}

}  // namespace ropekit
