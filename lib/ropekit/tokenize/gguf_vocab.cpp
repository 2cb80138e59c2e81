// The tokenizer.ggml.* metadata of GGUF files, rebuilt as the Hugging Face pipeline of the
// tokenizer it was converted from: "llama" (SentencePiece: scores, ▁ for spaces, byte fallback)
// and "gpt2" (byte-level BPE with merges and the pre-tokenizer regex of tokenizer.ggml.pre).
#include <cstring>

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/formats/gguf.hpp"
#include "ropekit/tokenize/pipeline_internal.hpp"

namespace ropekit {

namespace {

// llama.cpp's token types.
constexpr std::int32_t kUnknown = 2, kControl = 3, kUserDefined = 4;

const char* const kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

class GgufVocab {
  public:
    explicit GgufVocab(const std::string& path) : file_(GgufFile::open(path)), path_(path) {}

    const GgufValue* find(const std::string& key) const { return file_.find(key); }

    const GgufValue& array(const std::string& key, GgufType element) const {
        const GgufValue* v = find(key);
        if (!v || v->type != GgufType::array || v->element_type != element) {
            throw data_error(path_, key,
                             fmt::format("expected an array of {}", type_name(element)));
        }
        return *v;
    }

    std::vector<std::string> strings(const std::string& key) const {
        const GgufValue& v = array(key, GgufType::string);
        std::vector<std::string> out;
        out.reserve(v.count);
        std::size_t at = 12;  // element type u32, count u64; bounds were checked by GgufFile
        for (std::uint64_t i = 0; i < v.count; ++i) {
            std::uint64_t length = 0;
            std::memcpy(&length, v.raw.data() + at, 8);
            out.emplace_back(reinterpret_cast<const char*>(v.raw.data()) + at + 8, length);
            at += 8 + length;
        }
        return out;
    }

    template <class T>
    std::vector<T> numbers(const std::string& key, GgufType element, std::size_t count) const {
        const GgufValue& v = array(key, element);
        if (v.count != count) {
            throw data_error(
                path_, key,
                fmt::format("expected {} entries (one per token), found {}", count, v.count));
        }
        std::vector<T> out(count);
        std::memcpy(out.data(), v.raw.data() + 12, count * sizeof(T));
        return out;
    }

    std::optional<double> number(const std::string& key) const {
        const GgufValue* v = find(key);
        if (!v) return std::nullopt;
        if (!v->is_number()) throw data_error(path_, key, "expected a number");
        return v->as_double();
    }

    std::optional<std::string> text(const std::string& key) const {
        const GgufValue* v = find(key);
        if (!v) return std::nullopt;
        if (v->type != GgufType::string) throw data_error(path_, key, "expected a string");
        return v->as_string();
    }

    std::optional<TokenId> token_id(const std::string& key, std::size_t tokens) const {
        const auto id = number(key);
        if (!id) return std::nullopt;
        if (*id < 0 || *id >= static_cast<double>(tokens)) {
            throw data_error(
                path_, key,
                fmt::format("{} is not a token id (the vocabulary has {})", *id, tokens));
        }
        return static_cast<TokenId>(*id);
    }

    const std::string& path() const { return path_; }

  private:
    static const char* type_name(GgufType t) {
        return t == GgufType::string ? "strings" : t == GgufType::f32 ? "f32" : "i32";
    }
    GgufFile file_;
    std::string path_;
};

void add_tokens(const std::vector<std::string>& tokens, const std::vector<std::int32_t>& types,
                Vocab& vocab, AddedTokens& added) {
    for (std::size_t id = 0; id < tokens.size(); ++id) {
        vocab.add(tokens[id], static_cast<TokenId>(id));  // llama.cpp keeps the first of duplicates
        const std::int32_t type = types.empty() ? 1 : types[id];
        if (type == kUnknown || type == kControl || type == kUserDefined) {
            AddedToken token;
            token.content = tokens[id];
            token.id = static_cast<TokenId>(id);
            token.special = type != kUserDefined;
            added.add(token);
        }
    }
}

void build_llama(const GgufVocab& gguf, const std::vector<std::string>& tokens, Pipeline& p,
                 Vocab vocab) {
    auto scores = gguf.numbers<float>("tokenizer.ggml.scores", GgufType::f32, tokens.size());
    const auto unk = gguf.token_id("tokenizer.ggml.unknown_token_id", tokens.size());
    p.model = make_score_merge(std::move(vocab), std::move(scores), unk);
    const auto prefix_space = gguf.number("tokenizer.ggml.add_space_prefix");
    const bool add_space_prefix = prefix_space.value_or(1) != 0;
    if (add_space_prefix) p.normalizer.prepend("\u2581");
    p.normalizer.replace(" ", "\u2581");
    p.decoder.replace("\u2581", " ");
    p.decoder.byte_fallback();
    p.decoder.fuse();
    if (add_space_prefix) p.decoder.strip(" ", 1, 0);
}

void build_gpt2(const GgufVocab& gguf, Pipeline& p, Vocab vocab) {
    const std::string pre = gguf.text("tokenizer.ggml.pre").value_or("default");
    BpeOptions options;
    if (pre == "default" || pre == "gpt-2") {
        p.pre_tokenizer.byte_level(false, true, gguf.path());
    } else if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe") {
        p.pre_tokenizer.split_regex(kLlama3Pattern, SplitBehavior::isolated, gguf.path());
        p.pre_tokenizer.byte_level(false, false, gguf.path());
        options.ignore_merges = true;
    } else if (pre == "qwen2") {
        // Qwen's tokenizer.json normalizes to NFC first (llama.cpp does not).
        p.normalizer.unicode(NormalForm::nfc);
        p.pre_tokenizer.split_regex(kQwen2Pattern, SplitBehavior::isolated, gguf.path());
        p.pre_tokenizer.byte_level(false, false, gguf.path());
    } else {
        throw data_error(gguf.path(), "tokenizer.ggml.pre",
                         "unsupported pre-tokenizer '" + pre +
                             "' (supported: default, gpt-2, llama3, llama-v3, llama-bpe, qwen2)");
    }
    std::vector<std::pair<std::string, std::string>> merges;
    for (const std::string& m : gguf.strings("tokenizer.ggml.merges")) {
        const auto space = m.find(' ', 1);
        if (space == std::string::npos) {
            throw data_error(gguf.path(), "tokenizer.ggml.merges",
                             "merge '" + m + "' has no space");
        }
        merges.emplace_back(m.substr(0, space), m.substr(space + 1));
    }
    p.model = make_bpe(std::move(vocab), merges, options, gguf.path());
    p.decoder.byte_level();
}

}  // namespace

std::unique_ptr<TokenizerImpl> load_gguf_vocab(const std::string& path) {
    const GgufVocab gguf(path);
    const auto kind = gguf.text("tokenizer.ggml.model");
    if (!kind) throw data_error(path, "tokenizer.ggml.model", "the GGUF file has no tokenizer");
    if (*kind != "llama" && *kind != "gpt2") {
        throw data_error(path, "tokenizer.ggml.model",
                         "unsupported tokenizer '" + *kind + "' (supported: llama, gpt2)");
    }
    const std::vector<std::string> tokens = gguf.strings("tokenizer.ggml.tokens");
    std::vector<std::int32_t> types;
    if (gguf.find("tokenizer.ggml.token_type")) {
        types =
            gguf.numbers<std::int32_t>("tokenizer.ggml.token_type", GgufType::i32, tokens.size());
    }
    auto p = std::make_unique<Pipeline>();
    Vocab vocab;
    add_tokens(tokens, types, vocab, p->added);
    if (*kind == "llama") {
        build_llama(gguf, tokens, *p, std::move(vocab));
    } else {
        build_gpt2(gguf, *p, std::move(vocab));
    }
    p->bos = gguf.token_id("tokenizer.ggml.bos_token_id", tokens.size());
    p->eos = gguf.token_id("tokenizer.ggml.eos_token_id", tokens.size());
    const bool add_bos =
        gguf.number("tokenizer.ggml.add_bos_token").value_or(*kind == "llama") != 0;
    const bool add_eos = gguf.number("tokenizer.ggml.add_eos_token").value_or(0) != 0;
    if (add_bos && p->bos) p->prefix.push_back(*p->bos);
    if (add_eos && p->eos) p->suffix.push_back(*p->eos);
    p->source = path;
    p->description = fmt::format("GGUF {} vocabulary, {} tokens", *kind, tokens.size());
    return p;
}

}  // namespace ropekit
