// The tokenizer's building blocks against closed forms and hand-computed cases; whole-tokenizer
// parity with Hugging Face is checked end to end (tests/cli/test_rope_tokenize.py).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ropekit/core/sha256.hpp"
#include "ropekit/tokenize/byte_level_internal.hpp"
#include "ropekit/tokenize/model_internal.hpp"
#include "ropekit/tokenize/pre_tokenizer_internal.hpp"
#include "ropekit/tokenize/token_stream.hpp"
#include "ropekit/tokenize/utf8_internal.hpp"
#include "test_support.hpp"

using namespace ropekit;

TEST_CASE("sha256 gives the FIPS 180-4 example digests") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex(std::string(1000000, 'a')) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("invalid UTF-8 becomes one U+FFFD per maximal subpart (Unicode Table 3-8)") {
    const std::string bytes = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
    const std::string fffd = "\xEF\xBF\xBD";
    CHECK_FALSE(utf8::is_valid(bytes));
    CHECK(utf8::lossy(bytes) == "a" + fffd + fffd + fffd + "b" + fffd + "c" + fffd + fffd + "d");
    CHECK(utf8::is_valid("caf\xC3\xA9 \xF0\x9F\x9A\x80"));
    CHECK_FALSE(utf8::is_valid("\xED\xA0\x80"));  // a surrogate
    CHECK_FALSE(utf8::is_valid("\xC0\xAF"));      // an overlong '/'
    std::size_t length = 0;
    CHECK(utf8::decode("\xF0\x9F\x9A\x80", 0, length) == 0x1F680);
    CHECK(length == 4);
}

TEST_CASE("GPT-2's byte map: printable bytes are themselves, the other 68 move past U+00FF") {
    const auto& chars = byte_level::byte_chars();
    CHECK(chars['A'] == "A");
    CHECK(chars[' '] == "\xC4\xA0");   // U+0120 'Ġ'
    CHECK(chars['\n'] == "\xC4\x8A");  // U+010A 'Ċ'
    CHECK(chars[0] == "\xC4\x80");     // U+0100
    CHECK(chars[0xAD] == "\xC5\x83");  // soft hyphen, the last remapped byte: U+0143
    std::string all;
    for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
    CHECK(byte_level::decode(byte_level::encode(all)) == all);
    CHECK(byte_level::byte_count(byte_level::encode(all)) == 256);
}

TEST_CASE("windows: non-overlapping, and the sliding protocol scores each new token once") {
    std::vector<TokenId> stream(10);
    for (int i = 0; i < 10; ++i) stream[static_cast<std::size_t>(i)] = i;
    const Windows plain = cut_windows(stream, 4, 4, "s");
    CHECK(plain.count == 2);
    CHECK(plain.ids == std::vector<TokenId>{0, 1, 2, 3, 4, 5, 6, 7});
    CHECK(plain.scored == std::vector<std::uint8_t>{0, 1, 1, 1, 0, 1, 1, 1});
    CHECK(plain.dropped == 2);
    const Windows sliding = cut_windows(stream, 4, 2, "s");
    CHECK(sliding.count == 4);  // starts 0, 2, 4, 6
    CHECK(sliding.ids == std::vector<TokenId>{0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9});
    CHECK(sliding.scored ==
          std::vector<std::uint8_t>{0, 1, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1});
    CHECK(sliding.dropped == 0);
    test::expect_error([&] { cut_windows(stream, 11, 11, "s"); }, ExitCode::data,
                       {"fewer than one window of 11"});
    test::expect_error([&] { cut_windows(stream, 4, 5, "s"); }, ExitCode::usage, {"--stride"});
}

TEST_CASE("lines split at newlines only, and the last line needs none") {
    std::vector<std::string> lines;
    for_each_line(
        "a\r\nb\xE2\x80\xA8"
        "c\n\nd",
        [&](std::size_t, std::string_view l) { lines.emplace_back(l); });
    CHECK(lines == std::vector<std::string>{"a\r",
                                            "b\xE2\x80\xA8"
                                            "c",
                                            "", "d"});
}

TEST_CASE("BPE applies the lowest-ranked merge first, leftmost among equals") {
    Vocab vocab;
    const char* tokens[] = {"a", "b", "c", "ab", "bc", "abc", "aa"};
    for (int i = 0; i < 7; ++i) vocab.add(tokens[i], i);
    // "bc" outranks "ab", so "abc" is a + bc (no merge a + bc) -> [a, bc]; "aaa" is aa + a.
    const auto model = make_bpe(vocab, {{"b", "c"}, {"a", "b"}, {"ab", "c"}, {"a", "a"}}, {}, "t");
    std::vector<TokenId> ids;
    model->tokenize("abc", ids);
    CHECK(ids == std::vector<TokenId>{0, 4});
    ids.clear();
    model->tokenize("aaa", ids);
    CHECK(ids == std::vector<TokenId>{6, 0});
    test::expect_error(
        [&] {
            make_bpe(vocab, {{"x", "y"}}, {}, "t");
        },
        ExitCode::data, {"merge 0", "'x' 'y'"});
}

TEST_CASE("GPT-2's split pattern isolates words, numbers, punctuation and space runs") {
    PreTokenizer pre;
    pre.split_regex(kGpt2SplitPattern, SplitBehavior::isolated, "t");
    std::vector<std::string> pieces;
    pre.split("Hello  world's 2024!!", true, pieces);
    CHECK(pieces == std::vector<std::string>{"Hello", " ", " world", "'s", " 2024", "!!"});
}
