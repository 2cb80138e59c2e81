#include "ropekit/tokenize/tokenizer.hpp"

#include <sys/stat.h>

#include <fstream>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"
#include "ropekit/tokenize/tokenizer_internal.hpp"
#include "ropekit/tokenize/utf8_internal.hpp"

namespace ropekit {

using Json = nlohmann::json;

namespace {

bool exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string first_bytes(const std::string& path, std::size_t n) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw data_error(path, "", "cannot open the tokenizer");
    std::string bytes(n, '\0');
    in.read(bytes.data(), static_cast<std::streamsize>(n));
    bytes.resize(static_cast<std::size_t>(in.gcount()));
    return bytes;
}

std::string directory_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

bool is_gguf(const std::string& path) {
    return first_bytes(path, 4) == "GGUF";
}

// A tokenizer.json or SentencePiece model file.
std::unique_ptr<TokenizerImpl> load_file(const std::string& path) {
    const std::string start = first_bytes(path, 64);
    const auto text = start.find_first_not_of(" \t\r\n");
    if (text != std::string::npos && start[text] == '{') return load_tokenizer_json(path);
    return load_sentencepiece(path);  // a serialized SentencePiece ModelProto
}

// A model directory's tokenizer: tokenizer.json, else tokenizer.model.
std::unique_ptr<TokenizerImpl> load_directory(const std::string& dir) {
    if (exists(dir + "/tokenizer.json")) return load_tokenizer_json(dir + "/tokenizer.json");
    if (exists(dir + "/tokenizer.model")) return load_sentencepiece(dir + "/tokenizer.model");
    throw data_error(dir, "", "expected tokenizer.json or tokenizer.model in the directory");
}

}  // namespace

Tokenizer Tokenizer::open(const std::string& path) {
    if (!exists(path)) throw data_error(path, "", "no such file or directory");
    const bool directory = is_directory(path);
    if (!directory && is_gguf(path)) return Tokenizer(load_gguf_vocab(path));
    std::unique_ptr<TokenizerImpl> impl = directory ? load_directory(path) : load_file(path);
    if (!impl->prefix.empty() && !impl->bos) impl->bos = impl->prefix.front();
    const std::string config_path =
        (directory ? path : directory_of(path)) + "/tokenizer_config.json";
    if (exists(config_path)) {
        const auto config = read_json_file_unordered(config_path);
        interpret_json(config_path, [&] { apply_tokenizer_config(config, config_path, *impl); });
    }
    return Tokenizer(std::move(impl));
}

Tokenizer::Tokenizer(std::unique_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<TokenId> Tokenizer::encode_plain(std::string_view text) const {
    if (!utf8::is_valid(text)) throw data_error("", "", "the text is not valid UTF-8");
    std::vector<TokenId> ids;
    impl_->encode(text, ids);
    return ids;
}

std::vector<TokenId> Tokenizer::encode(std::string_view text) const {
    if (!utf8::is_valid(text)) throw data_error("", "", "the text is not valid UTF-8");
    std::vector<TokenId> ids(impl_->prefix);
    impl_->encode(text, ids);
    ids.insert(ids.end(), impl_->suffix.begin(), impl_->suffix.end());
    return ids;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special) const {
    return impl_->decode(ids, skip_special);
}

std::size_t Tokenizer::vocab_size() const {
    return impl_->vocab_size();
}
const std::vector<TokenId>& Tokenizer::prefix() const {
    return impl_->prefix;
}
const std::vector<TokenId>& Tokenizer::suffix() const {
    return impl_->suffix;
}
std::optional<TokenId> Tokenizer::bos() const {
    return impl_->bos;
}
std::optional<TokenId> Tokenizer::eos() const {
    return impl_->eos;
}
const std::string& Tokenizer::description() const {
    return impl_->description;
}
const std::string& Tokenizer::source() const {
    return impl_->source;
}

std::size_t Tokenizer::token_bytes(TokenId id) const {
    if (!impl_->has_id(id))
        throw data_error("", "", fmt::format("token id {} is outside the vocabulary", id));
    return impl_->token_bytes(id);
}

}  // namespace ropekit
