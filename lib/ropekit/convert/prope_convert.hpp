#pragma once
// prope-convert's conversions, one per input kind (docs/tools/prope-convert.md):
//   Hugging Face directory  config.json rewritten with a p-RoPE encoding (prope_encoding.hpp),
//                           weights hard-linked (or copied), shards holding *.rotary_emb.inv_freq
//                           rewritten with every other tensor byte-identical
//   GGUF                    rope_freqs.weight added or combined (factor 1 kept, 1e30 dropped)
//   HDF5                    activation dump re-rotated, or a frequency table
// Every output is built in a temporary file or directory beside the target and renamed into
// place only when complete and checked; inputs are never modified.
#include <functional>
#include <string>
#include <vector>

#include "ropekit/convert/prope_encoding.hpp"
#include "ropekit/dump/dump_reader.hpp"

namespace ropekit {

enum class InputKind { hf_directory, gguf, hdf5 };
inline constexpr EnumNames<InputKind, 4> kInputKindNames{{{InputKind::hf_directory, "hf"},
                                                          {InputKind::gguf, "gguf"},
                                                          {InputKind::hdf5, "h5"},
                                                          {InputKind::hdf5, "hdf5"}}};

std::string input_kind_name(InputKind kind);
// "hf", "gguf", "h5" (or "hdf5") for --input-kind; usage_error otherwise.
InputKind parse_input_kind(const std::string& name);
// A directory with config.json, a file starting with "GGUF", or an HDF5 file (by signature).
// Throws data_error if it is none of them.
InputKind detect_input_kind(const std::string& path);

struct ConvertOptions {
    PropeRequest request;
    bool copy = false;   // copy unchanged files instead of hard-linking them
    bool force = false;  // replace an existing output
    std::function<void(const std::string&)> note = [](const std::string&) {};
    // HDF5 dumps: where the hooks are and how they are laid out (dump_reader.hpp); the
    // overrides replace the dump's rope_layout / rotary_dim attributes.
    DumpNames names;
    VectorAxes axes;
    DumpOverrides overrides;
    // provenance for HDF5 outputs
    std::string tool = "prope-convert";
    std::string command_line;
};

struct ConvertReport {
    std::vector<std::string> kept;   // describe_kept() per table ("layer_type: " prefixed)
    std::vector<std::string> notes;  // what else was changed, removed or linked
    std::size_t linked = 0, copied = 0, rewritten = 0;
    // notes, then the kept lines: what the tool prints on stderr.
    std::vector<std::string> lines() const;
};

ConvertReport convert_hf_directory(const std::string& input, const std::string& output,
                                   const ConvertOptions& options);
ConvertReport convert_gguf(const std::string& input, const std::string& output,
                           const ConvertOptions& options);
ConvertReport convert_hdf5(const std::string& input, const std::string& output,
                           const ConvertOptions& options);
// Dispatches on the kind; '-' is accepted only for HDF5 (usage_error otherwise).
ConvertReport convert(InputKind kind, const std::string& input, const std::string& output,
                      const ConvertOptions& options);

}  // namespace ropekit
