#pragma once
// The Unicode normalization forms (through ICU), for the NFC/NFD/NFKC/NFKD normalizers.
#include <string>
#include <string_view>

namespace ropekit {

enum class NormalForm { nfc, nfd, nfkc, nfkd };

// `text` (valid UTF-8) in the given form; ASCII and already normalized text come back unchanged.
std::string normalize_unicode(std::string_view text, NormalForm form);

}  // namespace ropekit
