#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

#include "ropekit/core/error.hpp"
#include "ropekit/tokenize/unicode_normalize_internal.hpp"

namespace ropekit {

namespace {

const UNormalizer2* instance(NormalForm form) {
    UErrorCode status = U_ZERO_ERROR;
    const UNormalizer2* n = nullptr;
    switch (form) {
        case NormalForm::nfc:
            n = unorm2_getNFCInstance(&status);
            break;
        case NormalForm::nfd:
            n = unorm2_getNFDInstance(&status);
            break;
        case NormalForm::nfkc:
            n = unorm2_getNFKCInstance(&status);
            break;
        case NormalForm::nfkd:
            n = unorm2_getNFKDInstance(&status);
            break;
    }
    if (U_FAILURE(status)) throw data_error("", "", "ICU has no Unicode normalization data");
    return n;
}

void check(UErrorCode status) {
    if (U_FAILURE(status)) {
        throw data_error("", "",
                         std::string("Unicode normalization failed: ") + u_errorName(status));
    }
}

}  // namespace

std::string normalize_unicode(std::string_view text, NormalForm form) {
    bool ascii = true;
    for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
    if (ascii) return std::string(text);
    UErrorCode status = U_ZERO_ERROR;
    std::vector<UChar> utf16(text.size() + 1);
    int32_t length = 0;
    u_strFromUTF8(utf16.data(), static_cast<int32_t>(utf16.size()), &length, text.data(),
                  static_cast<int32_t>(text.size()), &status);
    check(status);
    const UNormalizer2* normalizer = instance(form);
    if (unorm2_isNormalized(normalizer, utf16.data(), length, &status) && U_SUCCESS(status)) {
        return std::string(text);
    }
    status = U_ZERO_ERROR;
    // Decomposition can grow a string (up to 18x for NFKD of some characters): ask for the size.
    int32_t needed = unorm2_normalize(normalizer, utf16.data(), length, nullptr, 0, &status);
    if (status != U_BUFFER_OVERFLOW_ERROR) check(status);
    status = U_ZERO_ERROR;
    std::vector<UChar> normalized(static_cast<std::size_t>(needed) + 1);
    needed = unorm2_normalize(normalizer, utf16.data(), length, normalized.data(),
                              static_cast<int32_t>(normalized.size()), &status);
    check(status);
    int32_t bytes = 0;
    status = U_ZERO_ERROR;
    u_strToUTF8(nullptr, 0, &bytes, normalized.data(), needed, &status);
    if (status != U_BUFFER_OVERFLOW_ERROR) check(status);
    status = U_ZERO_ERROR;
    std::string out(static_cast<std::size_t>(bytes), '\0');
    u_strToUTF8(out.data(), bytes, &bytes, normalized.data(), needed, &status);
    if (status != U_STRING_NOT_TERMINATED_WARNING) check(status);
    return out;
}

}  // namespace ropekit
