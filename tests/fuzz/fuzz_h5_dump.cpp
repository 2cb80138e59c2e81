// libFuzzer harness: the activation-dump reader on arbitrary bytes opened as an HDF5 file
// (H5Input::open_memory, the code path of "-" on stdin). It walks what the analysis tools read
// through DumpReader: root attributes, layers of every hook, validated shapes, the q/k check,
// the schedule, and (for small dumps) the vectors and patterns themselves; then the raw
// dataset list, shapes, attributes and small datasets, as h5-echo and prope-convert read them.
#include <string>

#include "harness.hpp"
#include "ropekit/dump/dump_reader.hpp"
#include "ropekit/hdf5/h5io.hpp"

namespace {

using namespace ropekit;

// One bad dataset must not hide problems in the next one: refusals are expected per step.
template <class Body>
void step(Body&& body) {
    try {
        body();
    } catch (const Error&) {
    }
}

void walk_dump(const H5Input& in) {
    const DumpReader reader(in, DumpNames{}, VectorAxes{}, DumpOverrides{});
    for (Hook hook : {Hook::q, Hook::k, Hook::rot_q, Hook::rot_k, Hook::pattern, Hook::scores}) {
        for (std::size_t layer : reader.layers(hook)) {
            step([&] {
                Tensor<float> out;
                if (is_vector_hook(hook)) {
                    const VectorShape s = reader.vector_shape(layer, hook);
                    (void)reader.schedule(layer, s.dim, true);
                    if (s.pos * s.heads * s.dim <= (1u << 16)) {
                        reader.read_vectors(layer, hook, 0, out);
                    }
                } else {
                    const PatternShape s = reader.pattern_shape(layer, hook);
                    if (s.queries * s.keys <= (1u << 16))
                        reader.read_pattern(layer, hook, 0, 0, out);
                }
            });
        }
        if (hook == Hook::q || hook == Hook::rot_q) {
            for (std::size_t layer : reader.layers(hook)) {
                step([&] {
                    (void)reader.check_query_key(layer, hook,
                                                 hook == Hook::q ? Hook::k : Hook::rot_k);
                });
            }
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > ropekit::fuzz::kMaxInput) return 0;
    ropekit::fuzz::expect_clean_refusal("fuzz_h5_dump", [&] {
        const auto in = H5Input::open_memory(data, size, "<fuzz>");
        step([&] { walk_dump(in); });
        (void)in.history();
        for (const auto& attr : in.attr_names("/")) step([&] { (void)in.attr("/", attr); });
        for (const auto& name : in.dataset_names()) {
            step([&] {
                const auto info = in.info(name);
                // Real tools stream big datasets slab by slab; read only what fits easily.
                if (element_count(info.shape) <= (1u << 16)) (void)in.read_float(name);
            });
            for (const auto& attr : in.attr_names(name)) step([&] { (void)in.attr(name, attr); });
        }
    });
    return 0;
}
