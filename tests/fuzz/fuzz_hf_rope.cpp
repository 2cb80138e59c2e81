// libFuzzer harness: the config.json rope-schedule parser (lib/ropekit/rope/hf_rope.hpp). Bytes are
// parsed as JSON the way read_hf_rope_config does; whatever parses is resolved and turned into
// frequency schedules, at initialisation and at a long sequence length (dynamic, longrope).
#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "harness.hpp"
#include "ropekit/rope/hf_rope.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > ropekit::fuzz::kMaxInput) return 0;
    const auto json = nlohmann::ordered_json::parse(data, data + size, nullptr,
                                                    /*allow_exceptions=*/false);
    if (json.is_discarded()) return 0;
    ropekit::fuzz::expect_clean_refusal("fuzz_hf_rope", [&] {
        const auto config = ropekit::parse_hf_rope_config(json, "config.json");
        for (const auto& [layer_type, params] : config.by_layer_type) {
            (void)layer_type;
            for (const auto seq_len : {std::optional<double>{}, std::optional<double>{1e6}}) {
                const auto schedule = ropekit::hf_schedule(params, seq_len);
                if (schedule.inv_freq.size() * 2 > schedule.head_dim) std::abort();
                for (double g : schedule.inv_freq) {
                    if (std::isnan(g)) std::abort();
                }
            }
        }
    });
    return 0;
}
