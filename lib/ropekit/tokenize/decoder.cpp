#include "ropekit/tokenize/decoder_internal.hpp"

#include <algorithm>
#include <optional>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/byte_level_internal.hpp"
#include "ropekit/tokenize/normalizer_internal.hpp"
#include "ropekit/tokenize/utf8_internal.hpp"

namespace ropekit {

using Json = nlohmann::json;

namespace {

// The byte of a "<0xNN>" token.
std::optional<unsigned char> fallback_byte(const std::string& token) {
    if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>') return {};
    unsigned value = 0;
    for (int i = 3; i < 5; ++i) {
        const char c = token[static_cast<std::size_t>(i)];
        const int digit = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                 : -1;
        if (digit < 0) return {};
        value = value * 16 + static_cast<unsigned>(digit);
    }
    return static_cast<unsigned char>(value);
}

void decode_byte_fallback(std::vector<std::string>& tokens) {
    std::vector<std::string> out;
    std::string bytes;
    const auto flush = [&] {
        if (bytes.empty()) return;
        if (utf8::is_valid(bytes)) {
            out.push_back(bytes);
        } else {
            for (std::size_t i = 0; i < bytes.size(); ++i) out.emplace_back("\xEF\xBF\xBD");
        }
        bytes.clear();
    };
    for (std::string& token : tokens) {
        if (const auto byte = fallback_byte(token)) {
            bytes += static_cast<char>(*byte);
            continue;
        }
        flush();
        out.push_back(std::move(token));
    }
    flush();
    tokens.swap(out);
}

// Hugging Face's Strip decoder works on characters: up to `start` leading and `stop` trailing
// copies of `content`, per token.
std::string strip_token(const std::string& token, const std::string& content, std::size_t start,
                        std::size_t stop) {
    std::vector<std::size_t> starts;
    for (std::size_t at = 0; at < token.size(); at += utf8::char_length(token, at)) {
        starts.push_back(at);
    }
    const auto char_at = [&](std::size_t i) {
        const std::size_t end = i + 1 < starts.size() ? starts[i + 1] : token.size();
        return token.substr(starts[i], end - starts[i]);
    };
    std::size_t first = 0, last = starts.size();
    while (first < std::min(start, starts.size()) && char_at(first) == content) ++first;
    for (std::size_t i = 0; i < stop && last > first && char_at(last - 1) == content; ++i) --last;
    const std::size_t begin = first < starts.size() ? starts[first] : token.size();
    const std::size_t end = last < starts.size() ? starts[last] : token.size();
    return token.substr(begin, end - begin);
}

// Hugging Face's ByteLevel decoder: a token whose characters all come from the byte map becomes
// those bytes, any other token its own UTF-8; the whole is then made valid like from_utf8_lossy.
void decode_byte_level(std::vector<std::string>& tokens) {
    std::string bytes;
    for (const std::string& token : tokens) {
        if (!byte_level::decode_exact(token, bytes)) bytes += token;
    }
    tokens.assign(1, utf8::lossy(bytes));
}

}  // namespace

Decoder Decoder::from_json(const Json& spec, const std::string& source) {
    Decoder d;
    if (!spec.is_null()) d.add(spec, source);
    return d;
}

void Decoder::add(const Json& spec, const std::string& source) {
    if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
        throw data_error(source, "decoder", "expected an object with a \"type\"");
    }
    const std::string type = spec["type"].get<std::string>();
    if (type == "Sequence") {
        if (!spec.contains("decoders") || !spec["decoders"].is_array()) {
            throw data_error(source, "decoder Sequence", "expected a \"decoders\" list");
        }
        for (const Json& part : spec["decoders"]) add(part, source);
    } else if (type == "Replace") {
        const auto [pattern, is_regex] =
            pattern_of(spec.value("pattern", Json()), source, "decoder Replace");
        Step step{Kind::replace, pattern, spec.value("content", std::string()), nullptr};
        if (is_regex) step.regex = std::make_shared<Regex>(pattern, source);
        steps_.push_back(step);
    } else if (type == "ByteFallback") {
        byte_fallback();
    } else if (type == "Fuse") {
        fuse();
    } else if (type == "Strip") {
        strip(spec.value("content", std::string(" ")), spec.value("start", std::size_t{0}),
              spec.value("stop", std::size_t{0}));
    } else if (type == "ByteLevel") {
        byte_level();
    } else if (type == "Metaspace") {
        Step step{Kind::metaspace, spec.value("replacement", std::string("\u2581")), " ", nullptr};
        const std::string scheme = spec.value("prepend_scheme", std::string());
        step.prepend = scheme.empty() ? spec.value("add_prefix_space", true) : scheme != "never";
        steps_.push_back(step);
    } else {
        throw data_error(source, "decoder",
                         "unsupported decoder type '" + type +
                             "' (supported: Sequence, Replace, ByteFallback, Fuse, Strip, "
                             "ByteLevel, Metaspace)");
    }
}

void Decoder::replace(std::string from, std::string to) {
    steps_.push_back({Kind::replace, std::move(from), std::move(to), nullptr});
}
void Decoder::byte_fallback() {
    steps_.push_back({Kind::byte_fallback, "", "", nullptr});
}
void Decoder::fuse() {
    steps_.push_back({Kind::fuse, "", "", nullptr});
}
void Decoder::byte_level() {
    steps_.push_back({Kind::byte_level, "", "", nullptr});
}
void Decoder::strip(std::string content, std::size_t start, std::size_t stop) {
    Step step{Kind::strip, std::move(content), "", nullptr};
    step.start = start;
    step.stop = stop;
    steps_.push_back(step);
}

void Decoder::apply(const Step& step, std::vector<std::string>& tokens) {
    switch (step.kind) {
        case Kind::replace:
            for (std::string& t : tokens) {
                t = step.regex ? replace_all(t, *step.regex, step.to)
                               : replace_all(t, step.from, step.to);
            }
            return;
        case Kind::byte_fallback:
            decode_byte_fallback(tokens);
            return;
        case Kind::fuse: {
            std::string all;
            for (const std::string& t : tokens) all += t;
            tokens.assign(1, all);
            return;
        }
        case Kind::strip:
            for (std::string& t : tokens) t = strip_token(t, step.from, step.start, step.stop);
            return;
        case Kind::byte_level:
            decode_byte_level(tokens);
            return;
        case Kind::metaspace:
            for (std::size_t i = 0; i < tokens.size(); ++i) {
                tokens[i] = replace_all(tokens[i], step.from, i == 0 && step.prepend ? "" : " ");
            }
            return;
    }
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
    if (steps_.empty()) {
        std::string out;
        for (std::size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
        return out;
    }
    for (const Step& step : steps_) apply(step, tokens);
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
}

}  // namespace ropekit
