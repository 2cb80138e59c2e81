// libFuzzer harness: the safetensors reader (lib/ropekit/formats/safetensors.hpp) on arbitrary
// bytes. The bytes go into a memfd so SafetensorsFile::open maps them exactly as it maps a
// checkpoint shard; every tensor it accepts is then read, to check the validated offsets really
// bound it.
#include <string>

#include "harness.hpp"
#include "ropekit/formats/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > ropekit::fuzz::kMaxInput) return 0;
    const ropekit::fuzz::MemoryFile input("fuzz-safetensors", data, size);
    const std::string path = input.path();
    ropekit::fuzz::expect_clean_refusal("fuzz_safetensors", [&] {
        const auto file = ropekit::SafetensorsFile::open(path);
        double sum = 0;
        for (const auto& t : file.tensors()) {
            if (file.find(t.name) != &t) std::abort();  // the name index must agree
            const auto values = file.read_double(t.name);
            if (values.size() * ropekit::safetensors_dtype_size(t.dtype) != t.byte_size())
                std::abort();
            for (double v : values.data) sum += v;
        }
        (void)sum;
    });
    return 0;
}
