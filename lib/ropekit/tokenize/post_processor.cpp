#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/tokenizer_internal.hpp"

namespace ropekit {

using Json = nlohmann::json;

namespace {

// {"SpecialToken": {"id": "<s>"}} items of a template, through its "special_tokens" table.
std::vector<TokenId> template_special(const Json& item, const Json& table,
                                      const std::string& source) {
    const std::string name = item.value("id", std::string());
    if (!table.is_object() || !table.contains(name) || !table[name].contains("ids") ||
        !table[name]["ids"].is_array()) {
        throw data_error(source, "post_processor",
                         "template token '" + name + "' is not in special_tokens");
    }
    std::vector<TokenId> ids;
    for (const Json& id : table[name]["ids"]) {
        if (!id.is_number_integer()) {
            throw data_error(source, "post_processor", "special_tokens '" + name + "': bad ids");
        }
        ids.push_back(id.get<TokenId>());
    }
    return ids;
}

void read_template(const Json& spec, const std::string& source, std::vector<TokenId>& prefix,
                   std::vector<TokenId>& suffix) {
    if (!spec.contains("single") || !spec["single"].is_array()) {
        throw data_error(source, "post_processor TemplateProcessing", "expected a \"single\" list");
    }
    bool seen_text = false;
    for (const Json& item : spec["single"]) {
        if (item.contains("Sequence")) {
            if (seen_text || item["Sequence"].value("id", std::string()) != "A") {
                throw data_error(source, "post_processor TemplateProcessing",
                                 "expected the single template to hold sequence A once");
            }
            seen_text = true;
        } else if (item.contains("SpecialToken")) {
            const auto ids = template_special(item["SpecialToken"],
                                              spec.value("special_tokens", Json()), source);
            auto& side = seen_text ? suffix : prefix;
            side.insert(side.end(), ids.begin(), ids.end());
        } else {
            throw data_error(source, "post_processor TemplateProcessing",
                             "unknown template item " + item.dump());
        }
    }
}

// RobertaProcessing / BertProcessing: "cls": [token, id] before, "sep": [token, id] after.
TokenId pair_id(const Json& spec, const char* key, const std::string& source) {
    if (!spec.contains(key) || !spec[key].is_array() || spec[key].size() != 2 ||
        !spec[key][1].is_number_integer()) {
        throw data_error(source, "post_processor",
                         fmt::format("expected \"{}\": [token, id]", key));
    }
    return spec[key][1].get<TokenId>();
}

}  // namespace

void read_post_processor(const Json& spec, const std::string& source, const TokenizerImpl& impl,
                         std::vector<TokenId>& prefix, std::vector<TokenId>& suffix) {
    if (spec.is_null()) return;
    const std::string type = spec.value("type", std::string());
    if (type == "TemplateProcessing") {
        read_template(spec, source, prefix, suffix);
    } else if (type == "ByteLevel") {
        // Only offsets change.
    } else if (type == "RobertaProcessing" || type == "BertProcessing") {
        prefix.push_back(pair_id(spec, "cls", source));
        suffix.push_back(pair_id(spec, "sep", source));
    } else if (type == "Sequence" && spec.contains("processors") && spec["processors"].is_array()) {
        for (const Json& part : spec["processors"]) {
            read_post_processor(part, source, impl, prefix, suffix);
        }
    } else {
        throw data_error(source, "post_processor",
                         "unsupported post-processor type '" + type +
                             "' (supported: TemplateProcessing, ByteLevel, RobertaProcessing, "
                             "BertProcessing, Sequence)");
    }
    for (TokenId id : prefix) {
        if (!impl.has_id(id)) {
            throw data_error(source, "post_processor",
                             fmt::format("token id {} is not in the vocabulary", id));
        }
    }
    for (TokenId id : suffix) {
        if (!impl.has_id(id)) {
            throw data_error(source, "post_processor",
                             fmt::format("token id {} is not in the vocabulary", id));
        }
    }
}

}  // namespace ropekit
