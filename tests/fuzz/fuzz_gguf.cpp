// libFuzzer harness: the GGUF reader (lib/ropekit/formats/gguf.hpp) on arbitrary bytes. The bytes
// go into a memfd so GgufFile::open maps them exactly as it maps a model file; every metadata value
// and every tensor it accepts is then touched, to check the validated bounds really hold.
#include <cmath>
#include <string>

#include "harness.hpp"
#include "ropekit/formats/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > ropekit::fuzz::kMaxInput) return 0;
    const ropekit::fuzz::MemoryFile input("fuzz-gguf", data, size);
    const std::string path = input.path();
    ropekit::fuzz::expect_clean_refusal("fuzz_gguf", [&] {
        const auto file = ropekit::GgufFile::open(path);
        for (const auto& kv : file.metadata()) {
            if (file.find(kv.key) == nullptr) std::abort();
            if (kv.value.type == ropekit::GgufType::string) (void)kv.value.as_string();
            if (kv.value.is_number()) (void)kv.value.as_double();
        }
        unsigned checksum = 0;
        for (const auto& t : file.tensors()) {
            if (file.find_tensor(t.name) != &t) std::abort();
            const std::uint8_t* bytes = file.bytes(t);
            for (std::uint64_t i = 0; i < t.byte_size; ++i) checksum += bytes[i];
            if (t.type == 0 || t.type == 1 || t.type == 30 || t.type == 28) {
                (void)file.read_float(t.name);
            }
        }
        (void)checksum;
    });
    return 0;
}
