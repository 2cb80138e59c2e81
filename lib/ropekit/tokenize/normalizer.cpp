#include "ropekit/tokenize/normalizer_internal.hpp"

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/utf8_internal.hpp"

namespace ropekit {

using Json = nlohmann::json;

namespace {

std::string type_of(const Json& spec, const std::string& source, const std::string& where) {
    if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
        throw data_error(source, where, "expected an object with a \"type\"");
    }
    return spec["type"].get<std::string>();
}

std::string string_field(const Json& spec, const char* key, const std::string& source,
                         const std::string& where) {
    if (!spec.contains(key) || !spec[key].is_string()) {
        throw data_error(source, where, std::string("expected a string \"") + key + "\"");
    }
    return spec[key].get<std::string>();
}

std::string strip(std::string_view text, bool left, bool right) {
    std::size_t begin = 0, end = text.size(), n = 0;
    if (left) {
        while (begin < end && utf8::is_whitespace(utf8::decode(text, begin, n))) begin += n;
    }
    if (right) {
        while (end > begin) {
            std::size_t start = end - 1;
            while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
                --start;
            if (!utf8::is_whitespace(utf8::decode(text, start, n))) break;
            end = start;
        }
    }
    return std::string(text.substr(begin, end - begin));
}

}  // namespace

std::pair<std::string, bool> pattern_of(const Json& pattern, const std::string& source,
                                        const std::string& where) {
    if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string()) {
        return {pattern["String"].get<std::string>(), false};
    }
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string()) {
        return {pattern["Regex"].get<std::string>(), true};
    }
    throw data_error(source, where, "expected a pattern {\"String\": ...} or {\"Regex\": ...}");
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
    if (from.empty()) return text;
    std::string out;
    std::size_t at = 0;
    for (std::size_t hit; (hit = text.find(from, at)) != std::string::npos;
         at = hit + from.size()) {
        out.append(text, at, hit - at);
        out.append(to);
    }
    if (at == 0) return text;
    out.append(text, at, std::string::npos);
    return out;
}

std::string replace_all(const std::string& text, const Regex& from, std::string_view to) {
    std::vector<std::pair<std::size_t, std::size_t>> matches;
    from.find_all(text, matches);
    std::string out;
    std::size_t at = 0;
    for (const auto& [begin, end] : matches) {
        out.append(text, at, begin - at);
        out.append(to);
        at = end;
    }
    out.append(text, at, std::string::npos);
    return out;
}

Normalizer Normalizer::from_json(const Json& spec, const std::string& source) {
    Normalizer n;
    if (!spec.is_null()) n.add(spec, source);
    return n;
}

void Normalizer::add(const Json& spec, const std::string& source) {
    const std::string type = type_of(spec, source, "normalizer");
    const std::string where = "normalizer " + type;
    if (type == "Sequence") {
        if (!spec.contains("normalizers") || !spec["normalizers"].is_array()) {
            throw data_error(source, where, "expected a \"normalizers\" list");
        }
        for (const Json& part : spec["normalizers"]) add(part, source);
    } else if (type == "Prepend") {
        prepend(string_field(spec, "prepend", source, where));
    } else if (type == "Replace") {
        const auto [pattern, is_regex] = pattern_of(spec.value("pattern", Json()), source, where);
        const std::string content = string_field(spec, "content", source, where);
        if (is_regex) {
            steps_.push_back(
                {Kind::replace_regex, pattern, content, std::make_shared<Regex>(pattern, source)});
        } else {
            replace(pattern, content);
        }
    } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
        unicode(type == "NFC"    ? NormalForm::nfc
                : type == "NFD"  ? NormalForm::nfd
                : type == "NFKC" ? NormalForm::nfkc
                                 : NormalForm::nfkd);
    } else if (type == "Strip") {
        Step step{Kind::strip, "", "", nullptr};
        step.left = spec.value("strip_left", false);
        step.right = spec.value("strip_right", false);
        steps_.push_back(step);
    } else {
        throw data_error(
            source, "normalizer",
            "unsupported normalizer type '" + type +
                "' (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Strip)");
    }
}

void Normalizer::prepend(std::string text) {
    steps_.push_back({Kind::prepend, std::move(text), "", nullptr});
}

void Normalizer::replace(std::string from, std::string to) {
    steps_.push_back({Kind::replace_string, std::move(from), std::move(to), nullptr});
}

void Normalizer::unicode(NormalForm form) {
    Step step{Kind::unicode, "", "", nullptr};
    step.form = form;
    steps_.push_back(step);
}

std::string Normalizer::apply(const Step& step, std::string text) {
    switch (step.kind) {
        case Kind::prepend:
            return text.empty() ? text : step.text + text;
        case Kind::replace_string:
            return replace_all(std::move(text), step.text, step.content);
        case Kind::replace_regex:
            return replace_all(text, *step.regex, step.content);
        case Kind::unicode:
            return normalize_unicode(text, step.form);
        case Kind::strip:
            return strip(text, step.left, step.right);
    }
    return text;
}

std::string Normalizer::apply(std::string_view text) const {
    std::string out(text);
    for (const Step& step : steps_) out = apply(step, std::move(out));
    return out;
}

}  // namespace ropekit
