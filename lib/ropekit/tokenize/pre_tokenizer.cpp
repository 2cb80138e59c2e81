#include "ropekit/tokenize/pre_tokenizer_internal.hpp"

#include <algorithm>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/byte_level_internal.hpp"
#include "ropekit/tokenize/normalizer_internal.hpp"

namespace ropekit {

using Json = nlohmann::json;

const char* const kGpt2SplitPattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

namespace {

struct Span {
    std::size_t begin, end;
    bool match;
};

std::string escape_regex(const std::string& literal) {
    std::string out;
    for (char c : literal) {
        if (std::string_view("\\^$.|?*+()[]{}-#&~ \t\n").find(c) != std::string_view::npos) {
            out += '\\';
        }
        out += c;
    }
    return out;
}

SplitBehavior parse_behavior(const std::string& name, const std::string& source) {
    if (name == "Removed") return SplitBehavior::removed;
    if (name == "Isolated") return SplitBehavior::isolated;
    if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
    if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
    if (name == "Contiguous") return SplitBehavior::contiguous;
    throw data_error(source, "pre_tokenizer Split", "unknown behavior '" + name + "'");
}

// Hugging Face's SplitDelimiterBehavior applied to the spans of a piece (pre_tokenizer.rs).
std::vector<Span> apply_behavior(std::vector<Span> spans, SplitBehavior behavior) {
    if (behavior == SplitBehavior::isolated) return spans;
    std::vector<Span> out;
    bool previous_match = false;
    switch (behavior) {
        case SplitBehavior::isolated:
        case SplitBehavior::removed:
            for (const Span& s : spans) {
                if (!s.match) out.push_back(s);
            }
            return out;
        case SplitBehavior::merged_with_previous:
            for (const Span& s : spans) {
                if (s.match && !previous_match && !out.empty()) {
                    out.back().end = s.end;
                } else {
                    out.push_back(s);
                }
                previous_match = s.match;
            }
            return out;
        case SplitBehavior::merged_with_next:
            for (auto s = spans.rbegin(); s != spans.rend(); ++s) {
                if (s->match && !previous_match && !out.empty()) {
                    out.back().begin = s->begin;
                } else {
                    out.push_back(*s);
                }
                previous_match = s->match;
            }
            std::reverse(out.begin(), out.end());
            return out;
        case SplitBehavior::contiguous:
            for (const Span& s : spans) {
                if (s.match == previous_match && !out.empty()) {
                    out.back().end = s.end;
                } else {
                    out.push_back(s);
                }
                previous_match = s.match;
            }
            return out;
    }
    return out;
}

}  // namespace

PreTokenizer PreTokenizer::from_json(const Json& spec, const std::string& source) {
    PreTokenizer p;
    if (!spec.is_null()) p.add(spec, source);
    return p;
}

void PreTokenizer::add(const Json& spec, const std::string& source) {
    if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string()) {
        throw data_error(source, "pre_tokenizer", "expected an object with a \"type\"");
    }
    const std::string type = spec["type"].get<std::string>();
    if (type == "Sequence") {
        if (!spec.contains("pretokenizers") || !spec["pretokenizers"].is_array()) {
            throw data_error(source, "pre_tokenizer Sequence", "expected a \"pretokenizers\" list");
        }
        for (const Json& part : spec["pretokenizers"]) add(part, source);
    } else if (type == "Split") {
        add_split(spec, source);
    } else if (type == "ByteLevel") {
        byte_level(spec.value("add_prefix_space", true), spec.value("use_regex", true), source);
    } else if (type == "Metaspace") {
        add_metaspace(spec, source);
    } else {
        throw data_error(source, "pre_tokenizer",
                         "unsupported pre-tokenizer type '" + type +
                             "' (supported: Sequence, Split, ByteLevel, Metaspace)");
    }
}

void PreTokenizer::add_split(const Json& spec, const std::string& source) {
    const auto [pattern, is_regex] =
        pattern_of(spec.value("pattern", Json()), source, "pre_tokenizer Split");
    Step step;
    step.kind = Kind::split;
    step.regex = std::make_shared<Regex>(is_regex ? pattern : escape_regex(pattern), source);
    step.behavior = parse_behavior(spec.value("behavior", std::string("Isolated")), source);
    step.invert = spec.value("invert", false);
    steps_.push_back(step);
}

void PreTokenizer::add_metaspace(const Json& spec, const std::string& source) {
    Step step;
    step.kind = Kind::metaspace;
    step.replacement = spec.value("replacement", std::string("\u2581"));
    step.split = spec.value("split", true);
    // Splits before each replacement character, keeping it with what follows.
    step.regex = std::make_shared<Regex>(escape_regex(step.replacement), source);
    step.behavior = SplitBehavior::merged_with_next;
    const std::string scheme = spec.value("prepend_scheme", std::string());
    if (scheme.empty()) {
        step.prepend = spec.value("add_prefix_space", true) ? Prepend::always : Prepend::never;
    } else if (scheme == "always" || scheme == "first" || scheme == "never") {
        step.prepend = scheme == "always"  ? Prepend::always
                       : scheme == "first" ? Prepend::first
                                           : Prepend::never;
    } else {
        throw data_error(source, "pre_tokenizer Metaspace",
                         "unknown prepend_scheme '" + scheme + "'");
    }
    steps_.push_back(step);
}

void PreTokenizer::split_regex(const std::string& pattern, SplitBehavior behavior,
                               const std::string& source) {
    Step step;
    step.kind = Kind::split;
    step.regex = std::make_shared<Regex>(pattern, source);
    step.behavior = behavior;
    steps_.push_back(step);
}

void PreTokenizer::byte_level(bool add_prefix_space, bool use_regex, const std::string& source) {
    Step step;
    step.kind = Kind::byte_level;
    step.add_prefix_space = add_prefix_space;
    if (use_regex) step.regex = std::make_shared<Regex>(kGpt2SplitPattern, source);
    steps_.push_back(step);
}

bool PreTokenizer::is_byte_level() const {
    for (const Step& s : steps_) {
        if (s.kind == Kind::byte_level) return true;
    }
    return false;
}

void PreTokenizer::apply_split(const Step& step, const std::string& piece,
                               std::vector<std::string>& out) const {
    matches_.clear();
    step.regex->find_all(piece, matches_);
    std::vector<Span> spans;
    std::size_t previous = 0;
    for (const auto& [begin, end] : matches_) {
        if (begin > previous) spans.push_back({previous, begin, step.invert});
        spans.push_back({begin, end, !step.invert});
        previous = end;
    }
    if (previous < piece.size()) spans.push_back({previous, piece.size(), step.invert});
    for (const Span& s : apply_behavior(std::move(spans), step.behavior)) {
        if (s.end > s.begin) out.emplace_back(piece, s.begin, s.end - s.begin);
    }
}

void PreTokenizer::apply(const Step& step, std::string piece, bool first,
                         std::vector<std::string>& out) const {
    if (step.kind == Kind::split) {
        apply_split(step, piece, out);
    } else if (step.kind == Kind::byte_level) {
        if (step.add_prefix_space && piece.front() != ' ') piece.insert(0, 1, ' ');
        const std::size_t from = out.size();
        if (step.regex) {
            Step isolated;
            isolated.regex = step.regex;
            apply_split(isolated, piece, out);
        } else {
            out.push_back(std::move(piece));
        }
        for (std::size_t i = from; i < out.size(); ++i) out[i] = byte_level::encode(out[i]);
    } else {
        piece = replace_all(std::move(piece), " ", step.replacement);
        const bool starts = piece.compare(0, step.replacement.size(), step.replacement) == 0;
        if (!starts &&
            (step.prepend == Prepend::always || (step.prepend == Prepend::first && first))) {
            piece.insert(0, step.replacement);
        }
        if (!step.split) {
            out.push_back(std::move(piece));
            return;
        }
        apply_split(step, piece, out);
    }
}

void PreTokenizer::split(std::string_view text, bool at_start,
                         std::vector<std::string>& pieces) const {
    pieces.clear();
    if (text.empty()) return;
    pieces.emplace_back(text);
    std::vector<std::string> next;
    for (const Step& step : steps_) {
        next.clear();
        for (std::size_t i = 0; i < pieces.size(); ++i) {
            apply(step, std::move(pieces[i]), at_start && i == 0, next);
        }
        pieces.swap(next);
    }
}

}  // namespace ropekit
