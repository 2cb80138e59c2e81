#pragma once
// rope-dump's work: run token sequences through a model in batches and stream the attention
// activations of chosen layers into a TransformerLens-layout dump (dump.hpp), with the tokens,
// per-token NLL and root attributes describing the model and the RoPE schedule used.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ropekit/core/dtype.hpp"
#include "ropekit/core/tensor.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/hdf5/h5io.hpp"
#include "ropekit/model/llama_model.hpp"
#include "ropekit/model/token_sampling.hpp"

namespace ropekit {

// The schedule to run with: the model's own, with --theta (plain RoPE at that base, same layout
// and rotary dims; replaces any scaling), then --p / --reverse (p-RoPE) applied on top.
Schedule override_schedule(const LlamaModel& model, std::optional<double> theta,
                           std::optional<double> p, bool reverse);
// The same for gemma3's local schedule of its sliding-window layers (nullopt for a model with one
// schedule): --theta makes it plain RoPE at that base too (every layer then rotates alike), and
// --p / --reverse drop its own lowest frequencies.
std::optional<Schedule> override_local_schedule(const LlamaModel& model,
                                                std::optional<double> theta,
                                                std::optional<double> p, bool reverse);

// Where the token ids come from: exactly one of a file (token_ids.hpp), a literal list, or
// sampling from the model itself.
struct TokenSource {
    std::optional<std::string> file;
    std::optional<std::string> ids;
    std::optional<SampleSpec> sample;
};
// [sequences, length] ids checked against the model's vocabulary. progress(done) while sampling.
Tensor<std::int64_t> read_token_source(const LlamaModel& model, const TokenSource& source,
                                       const std::function<void(std::size_t)>& progress = {});
std::string describe(const TokenSource& source);  // for the token_source attribute

struct DumpRequest {
    std::vector<std::size_t> layers;         // which layers' hooks to write
    std::vector<Hook> hooks;                 // may be empty: only tokens and nll
    std::size_t batch = 8;                   // sequences per forward pass (bounds memory)
    Schedule schedule;                       // from override_schedule
    std::optional<Schedule> local_schedule;  // from override_local_schedule (gemma3)
    std::optional<double> theta;             // the override, if any (for the attributes)
    double p = 1.0;
    bool reverse = false;
    DType stored = DType::f32;  // element type of the hook datasets
};

// The schedule `layer` runs with under `request` (what the dump records as its row of
// layer_rope_inv_freq): gemma3's sliding-window layers take request.local_schedule, every other
// layer (and every layer of other families) request.schedule.
const Schedule& layer_schedule(const LlamaModel& model, const DumpRequest& request,
                               std::size_t layer);

struct DumpSummary {
    std::size_t sequences = 0, tokens = 0;  // tokens = per sequence
    double mean_nll = 0, perplexity = 0;    // over positions 1 .. tokens-1, in nats
    double prefill_seconds = 0;             // forward passes only (no HDF5 writing)
    std::vector<double> nll;                // [sequences, tokens], as the "nll" dataset
};

// "perplexity P (mean NLL M nats over N predicted tokens); prefill R tokens/s"
std::string summary_line(const DumpSummary& summary);

// Writes tokens, nll, blocks.{L}.attn.hook_* for the request, and the root attributes into
// `out` (not committed). progress(done_sequences) after each batch.
DumpSummary write_model_dump(const LlamaModel& model, const Tensor<std::int64_t>& ids,
                             const DumpRequest& request, H5Output& out,
                             const std::function<void(std::size_t)>& progress = {});

}  // namespace ropekit
