#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/regex_internal.hpp"

namespace ropekit {

struct Regex::Compiled {
    pcre2_code* code = nullptr;
    pcre2_match_data* match = nullptr;  // one per Regex: a Tokenizer is used by one thread
    ~Compiled() {
        pcre2_match_data_free(match);
        pcre2_code_free(code);
    }
};

std::string oniguruma_to_pcre2(const std::string& pattern) {
    std::string out;
    bool in_class = false;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char next = pattern[++i];
            if (next == 's') {
                out += in_class ? "\\s\\x{85}" : "[\\s\\x{85}]";
            } else if (next == 'S') {
                if (in_class) throw std::invalid_argument("\\S inside a character class");
                out += "[^\\s\\x{85}]";
            } else {
                out += c;
                out += next;
            }
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            out += c;
            // A ']' right after '[' or '[^' is a literal.
            if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
            if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        out += c;
    }
    return out;
}

Regex::Regex(const std::string& pattern, const std::string& where)
    : compiled_(std::make_unique<Compiled>()) {
    std::string translated;
    try {
        translated = oniguruma_to_pcre2(pattern);
    } catch (const std::invalid_argument& e) {
        throw data_error(where, "",
                         std::string("unsupported regex (") + e.what() + "): " + pattern);
    }
    int error = 0;
    PCRE2_SIZE offset = 0;
    compiled_->code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                      PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (!compiled_->code) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error, message, sizeof message);
        throw data_error(where, "",
                         "regex does not compile (" +
                             std::string(reinterpret_cast<char*>(message)) + "): " + pattern);
    }
    pcre2_jit_compile(compiled_->code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter
    compiled_->match = pcre2_match_data_create_from_pattern(compiled_->code, nullptr);
}

Regex::~Regex() = default;

void Regex::find_all(std::string_view text,
                     std::vector<std::pair<std::size_t, std::size_t>>& out) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    std::size_t at = 0;
    while (at <= text.size()) {
        const int rc = pcre2_match(compiled_->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK,
                                   compiled_->match, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {  // a match or depth limit: never return a partial split
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(rc, message, sizeof message);
            throw data_error("", "",
                             "pre-tokenizer regex failed on the text (" +
                                 std::string(reinterpret_cast<char*>(message)) + ")");
        }
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(compiled_->match);
        const std::size_t begin = ovector[0], end = ovector[1];
        out.emplace_back(begin, end);
        if (end > begin) {
            at = end;
        } else {  // an empty match: step over one character
            if (end >= text.size()) break;
            at = end + 1;
            while (at < text.size() && (static_cast<unsigned char>(text[at]) & 0xC0) == 0x80) ++at;
        }
    }
}

}  // namespace ropekit
