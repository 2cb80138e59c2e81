// tokenizer.json (Hugging Face tokenizers' serialization) into a Pipeline.
#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/json.hpp"
#include "ropekit/tokenize/pipeline_internal.hpp"

namespace ropekit {

using Json = nlohmann::json;

namespace {

const Json& member(const Json& object, const char* key, const std::string& source,
                   const std::string& where, Json::value_t type) {
    if (!object.is_object() || !object.contains(key) || object[key].type() != type) {
        throw data_error(
            source, where,
            fmt::format("expected \"{}\" of JSON type {}", key, Json(type).type_name()));
    }
    return object[key];
}

std::optional<std::string> optional_string(const Json& object, const char* key) {
    if (!object.contains(key) || !object[key].is_string()) return std::nullopt;
    return object[key].get<std::string>();
}

// Merges as "a b" strings (older files) or ["a", "b"] pairs (newer ones).
std::vector<std::pair<std::string, std::string>> read_merges(const Json& merges,
                                                             const std::string& source) {
    std::vector<std::pair<std::string, std::string>> out;
    out.reserve(merges.size());
    for (const Json& m : merges) {
        if (m.is_string()) {
            const std::string& text = m.get_ref<const std::string&>();
            const auto space = text.find(' ');
            if (space == std::string::npos || space == 0 || space + 1 == text.size()) {
                throw data_error(source, "model.merges",
                                 fmt::format("merge {} '{}' is not two tokens separated by a space",
                                             out.size(), text));
            }
            out.emplace_back(text.substr(0, space), text.substr(space + 1));
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
        } else {
            throw data_error(
                source, "model.merges",
                fmt::format("merge {} is neither \"a b\" nor [\"a\", \"b\"]", out.size()));
        }
    }
    return out;
}

std::unique_ptr<Model> read_bpe(const Json& model, const std::string& source) {
    if (model.contains("dropout") && !model["dropout"].is_null()) {
        throw data_error(source, "model.dropout", "BPE dropout is random: refused");
    }
    Vocab vocab;
    for (const auto& [token, id] :
         member(model, "vocab", source, "model", Json::value_t::object).items()) {
        if (!id.is_number_integer() || id.get<std::int64_t>() < 0 ||
            id.get<std::int64_t>() > INT32_MAX) {
            throw data_error(source, "model.vocab", "token '" + token + "' has no valid id");
        }
        if (!vocab.add(token, id.get<TokenId>())) {
            throw data_error(source, "model.vocab", "token '" + token + "' appears twice");
        }
    }
    BpeOptions options;
    options.unk_token = optional_string(model, "unk_token");
    if (options.unk_token && !vocab.find(*options.unk_token)) {
        throw data_error(source, "model.unk_token",
                         "'" + *options.unk_token + "' is not in the vocabulary");
    }
    options.fuse_unk = model.value("fuse_unk", false);
    options.byte_fallback = model.value("byte_fallback", false);
    options.ignore_merges = model.value("ignore_merges", false);
    options.continuing_subword_prefix =
        optional_string(model, "continuing_subword_prefix").value_or("");
    options.end_of_word_suffix = optional_string(model, "end_of_word_suffix").value_or("");
    const Json& merges = member(model, "merges", source, "model", Json::value_t::array);
    return make_bpe(std::move(vocab), read_merges(merges, source), options, source);
}

std::unique_ptr<Model> read_unigram(const Json& model, const std::string& source) {
    Vocab vocab;
    std::vector<double> scores;
    for (const Json& entry : member(model, "vocab", source, "model", Json::value_t::array)) {
        if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() ||
            !entry[1].is_number()) {
            throw data_error(source, "model.vocab",
                             fmt::format("entry {} is not [piece, score]", scores.size()));
        }
        if (!vocab.add(entry[0].get<std::string>(), static_cast<TokenId>(scores.size()))) {
            throw data_error(source, "model.vocab",
                             "piece '" + entry[0].get<std::string>() + "' appears twice");
        }
        scores.push_back(entry[1].get<double>());
    }
    UnigramOptions options;
    if (model.contains("unk_id") && model["unk_id"].is_number_integer()) {
        const auto unk = model["unk_id"].get<std::int64_t>();
        if (unk < 0 || static_cast<std::size_t>(unk) >= scores.size()) {
            throw data_error(source, "model.unk_id",
                             fmt::format("{} is outside the vocabulary", unk));
        }
        options.unk_id = static_cast<TokenId>(unk);
    }
    options.byte_fallback = model.value("byte_fallback", false);
    return make_unigram(std::move(vocab), std::move(scores), options);
}

void read_added_tokens(const Json& file, const std::string& source, AddedTokens& added) {
    if (!file.contains("added_tokens") || file["added_tokens"].is_null()) return;
    for (const Json& t : member(file, "added_tokens", source, "", Json::value_t::array)) {
        AddedToken token;
        token.content =
            member(t, "content", source, "added_tokens", Json::value_t::string).get<std::string>();
        if (!t.contains("id") || !t["id"].is_number_integer() || t["id"].get<std::int64_t>() < 0) {
            throw data_error(source, "added_tokens",
                             "token '" + token.content + "' has no valid id");
        }
        token.id = t["id"].get<TokenId>();
        token.special = t.value("special", false);
        token.normalized = t.value("normalized", !token.special);
        token.lstrip = t.value("lstrip", false);
        token.rstrip = t.value("rstrip", false);
        if (t.value("single_word", false)) {
            throw data_error(
                source, "added_tokens",
                "single_word added tokens are not supported ('" + token.content + "')");
        }
        added.add(token);
    }
}

std::unique_ptr<TokenizerImpl> pipeline_of(const Json& file, const std::string& path) {
    if (!file.is_object()) throw data_error(path, "", "expected a JSON object");
    auto pipeline = std::make_unique<Pipeline>();
    const Json& model = member(file, "model", path, "", Json::value_t::object);
    const std::string type = model.value("type", std::string("BPE"));
    if (type == "BPE") {
        pipeline->model = read_bpe(model, path);
    } else if (type == "Unigram") {
        pipeline->model = read_unigram(model, path);
    } else {
        throw data_error(path, "model.type",
                         "unsupported model type '" + type + "' (supported: BPE, Unigram)");
    }
    read_added_tokens(file, path, pipeline->added);
    pipeline->normalizer = Normalizer::from_json(file.value("normalizer", Json()), path);
    pipeline->pre_tokenizer = PreTokenizer::from_json(file.value("pre_tokenizer", Json()), path);
    pipeline->decoder = Decoder::from_json(file.value("decoder", Json()), path);
    read_post_processor(file.value("post_processor", Json()), path, *pipeline, pipeline->prefix,
                        pipeline->suffix);
    pipeline->source = path;
    pipeline->description = fmt::format("tokenizer.json {}{}, {} tokens", type,
                                        pipeline->pre_tokenizer.is_byte_level() ? " (byte-level)"
                                        : model.value("byte_fallback", false)   ? " (byte fallback)"
                                                                                : "",
                                        pipeline->vocab_size());
    return pipeline;
}

}  // namespace

std::unique_ptr<TokenizerImpl> load_tokenizer_json(const std::string& path) {
    const Json file = read_json_file_unordered(path);
    return interpret_json(path, [&] { return pipeline_of(file, path); });
}

}  // namespace ropekit
