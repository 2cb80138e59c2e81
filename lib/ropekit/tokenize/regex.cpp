#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

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

Regex::Regex(const std::string& pattern, const std::string& where)
    : compiled_(std::make_unique<Compiled>()) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    compiled_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
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
