#include "ropekit/tokenize/model_internal.hpp"

namespace ropekit {

bool Vocab::add(const std::string& token, TokenId id) {
    const std::string* stored = &storage_.emplace_back(token);
    const auto [it, inserted] = ids_.emplace(std::string_view(*stored), id);
    const bool unique = inserted || it->second == id;
    const auto index = static_cast<std::size_t>(id);
    if (index >= tokens_.size()) tokens_.resize(index + 1, nullptr);
    tokens_[index] = stored;
    return unique;
}

std::optional<TokenId> Vocab::find(std::string_view token) const {
    const auto it = ids_.find(token);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
}

std::string_view Vocab::token(TokenId id) const {
    return has(id) ? std::string_view(*tokens_[static_cast<std::size_t>(id)]) : std::string_view();
}

bool Vocab::has(TokenId id) const {
    return id >= 0 && static_cast<std::size_t>(id) < tokens_.size() &&
           tokens_[static_cast<std::size_t>(id)] != nullptr;
}

}  // namespace ropekit
