#include "ropekit/model/text_dump.hpp"

#include <fstream>

#include <sys/stat.h>

#include <cmath>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/sha256.hpp"
#include "ropekit/formats/gguf.hpp"
#include "ropekit/tokenize/tokenizer.hpp"

namespace ropekit {

namespace {

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

Tensor<std::int64_t> as_tensor(std::size_t rows, std::size_t columns, std::vector<std::int64_t> v) {
    Tensor<std::int64_t> t({rows, columns});
    t.data = std::move(v);
    return t;
}

}  // namespace

std::vector<std::string> decoded_sequences(const std::string& model_path,
                                           const Tensor<std::int64_t>& ids) {
    const bool directory = is_directory(model_path);
    const bool has_files = directory && (std::ifstream(model_path + "/tokenizer.json").good() ||
                                         std::ifstream(model_path + "/tokenizer.model").good());
    if (!has_files && !(!directory && starts_as_gguf(model_path))) return {};
    const Tokenizer tokenizer = Tokenizer::open(model_path);
    std::vector<std::string> texts;
    const std::size_t length = ids.shape[1];
    for (std::size_t b = 0; b < ids.shape[0]; ++b) {
        const std::int64_t* row = ids.ptr() + b * length;
        texts.push_back(tokenizer.decode(std::vector<TokenId>(row, row + length)));
    }
    return texts;
}

TextWindows read_text_windows(const std::string& model_path, std::size_t vocab,
                              const TextSource& spec, std::size_t length) {
    if (!is_directory(model_path) && !starts_as_gguf(model_path)) {
        throw data_error(model_path, "",
                         "--text needs the model's tokenizer: give a Hugging Face "
                         "directory with tokenizer.json or tokenizer.model, or a GGUF file");
    }
    const Tokenizer tokenizer = Tokenizer::open(model_path);
    const std::string source = spec.path == "-" ? "<stdin>" : spec.path;
    const std::string text = read_text(spec.path);
    const TokenStream stream = encode_documents(tokenizer, text, spec.whole, source);
    const Windows w = cut_windows(stream.ids, length, spec.stride ? spec.stride : length, source);
    std::vector<std::int64_t> ids(w.ids.begin(), w.ids.end()),
        scored(w.scored.begin(), w.scored.end());
    std::vector<std::int64_t> bytes;
    bytes.reserve(ids.size());
    for (std::int64_t id : ids) {
        if (static_cast<std::size_t>(id) >= vocab) {
            throw data_error(
                tokenizer.source(), "",
                fmt::format("token id {} is outside the model's vocabulary [0, {})", id, vocab));
        }
        bytes.push_back(static_cast<std::int64_t>(tokenizer.token_bytes(static_cast<TokenId>(id))));
    }
    TextWindows out;
    out.ids = as_tensor(w.count, w.length, std::move(ids));
    out.scored = as_tensor(w.count, w.length, std::move(scored));
    out.bytes = as_tensor(w.count, w.length, std::move(bytes));
    out.tokenizer = tokenizer.description();
    out.tokenizer_path = tokenizer.source();
    out.text_source = source;
    out.text_sha256 = sha256_hex(text);
    out.documents = stream.documents;
    out.dropped = w.dropped;
    return out;
}

std::string record_text_perplexity(H5Output& out, const TextWindows& w, const DumpSummary& s) {
    double nll = 0;
    std::int64_t tokens = 0, bytes = 0;
    for (std::size_t i = 0; i < w.scored.data.size(); ++i) {
        if (!w.scored.data[i]) continue;
        nll += s.nll[i];
        ++tokens;
        bytes += w.bytes.data[i];
    }
    const double per_token = nll / static_cast<double>(tokens);
    const double per_byte = nll / static_cast<double>(bytes);
    out.write("scored", w.scored, {"batch", "pos"}, "1 = counted in perplexity");
    out.write("token_bytes", w.bytes, {"batch", "pos"}, "bytes of text");
    out.set_attr("/", "token_source", "text " + w.text_source);
    out.set_attr("/", "text_source", w.text_source);
    out.set_attr("/", "text_sha256", w.text_sha256);
    out.set_attr("/", "tokenizer", w.tokenizer);
    out.set_attr("/", "tokenizer_path", w.tokenizer_path);
    out.set_attr("/", "documents", static_cast<std::int64_t>(w.documents));
    out.set_attr("/", "dropped_tokens", static_cast<std::int64_t>(w.dropped));
    out.set_attr("/", "scored_tokens", tokens);
    out.set_attr("/", "scored_bytes", bytes);
    out.set_attr("/", "mean_nll", per_token);
    out.set_attr("/", "perplexity", std::exp(per_token));
    out.set_attr("/", "perplexity_per_byte", std::exp(per_byte));
    out.set_attr("/", "bits_per_byte", per_byte / std::log(2.0));
    return fmt::format(
        "perplexity {:.4f} per token, {:.4f} per byte ({:.4f} bits/byte) over {} scored tokens, {} "
        "bytes; prefill {:.0f} tokens/s",
        std::exp(per_token), std::exp(per_byte), per_byte / std::log(2.0), tokens, bytes,
        static_cast<double>(s.sequences * s.tokens) / s.prefill_seconds);
}

}  // namespace ropekit
