#include "ropekit/analysis/decay_run.hpp"

#include <regex>

#include <fmt/format.h>

#include "ropekit/analysis/decay.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/output_path.hpp"
#include "ropekit/dump/dump_schema.hpp"
#include "ropekit/rope/logit_curve.hpp"

namespace ropekit {
namespace {

DecayRequest decay_request(const DecayCommand& command) {
    DecayRequest request;
    request.params.mode = parse_decay_mode(command.mode);
    request.params.head_dim = command.head_dim.value_or(256);
    request.params.theta = command.theta.value_or(1e4);
    request.params.p = command.p.value_or(1.0);
    request.params.seed = command.seed;
    request.params.first_sample = command.first_sample;
    request.offsets = command.offsets.empty() ? offset_range(command.max_offset + 1)
                                              : parse_offsets(command.offsets);
    request.samples = command.samples;
    request.query = command.query;
    request.key = command.key;
    request.variance_se = command.check;
    return request;
}

// The layer of a TransformerLens dataset name ("blocks.3.attn.hook_q" is layer 3).
std::optional<std::size_t> layer_of(const std::string& dataset) {
    static const std::regex pattern("(^|/)blocks\\.([0-9]+)\\.");
    std::smatch m;
    if (!std::regex_search(dataset, m, pattern)) return std::nullopt;
    return static_cast<std::size_t>(std::stoul(m[2]));
}

// File mode without --theta: the frequencies the dump recorded for the query's layer (scaling
// and p-RoPE included, so p defaults to 1 then).
void take_stored_frequencies(DecayParams& params, const H5Input& in, const DecayCommand& command) {
    const DumpAttributes attrs = read_dump_attributes(in);
    if (command.theta || (!attrs.rope_inv_freq && !attrs.layer_rope_inv_freq)) return;
    std::size_t layer = 0;
    if (attrs.layer_rope_inv_freq) {
        const std::optional<std::size_t> named =
            command.layer ? command.layer : layer_of(command.query);
        if (!named) {
            throw usage_error(
                fmt::format("{} has a RoPE schedule per layer (layer_rope_inv_freq): "
                            "pass --layer (or --theta)",
                            in.name()));
        }
        params.layer = layer = *named;
    }
    params.inv_freq = *stored_frequencies(attrs, layer, in.name());
    if (2 * params.inv_freq.size() > params.head_dim) {
        throw data_error(in.name(),
                         attrs.layer_rope_inv_freq ? "/@layer_rope_inv_freq" : "/@rope_inv_freq",
                         fmt::format("{} frequencies do not fit head_dim {} (or pass --theta)",
                                     params.inv_freq.size(), params.head_dim));
    }
    if (!command.p) params.p = 1.0;
}

}  // namespace

void run_rope_decay(const DecayCommand& command, const RunContext& context,
                    const WorkShare& share) {
    const std::vector<std::string> inputs{command.input};
    check_file_output(context.output, context.force, inputs);
    if (!command.plot.empty()) check_file_output(command.plot, context.force, inputs);
    DecayRequest request = decay_request(command);
    std::optional<H5Input> in;
    if (!command.input.empty()) {
        in = H5Input::open(command.input);
        request.input = &*in;
        if (!command.head_dim && in->has(command.query)) {
            const Shape shape = in->info(command.query).shape;
            if (!shape.empty()) request.params.head_dim = shape.back();
        }
        take_file_defaults(request.params, *in, command.theta.has_value(), command.p.has_value(),
                           command.layout);
        take_stored_frequencies(request.params, *in, command);
    }
    const Progress progress = [&](std::size_t done, std::size_t total) {
        context.progress(done, total, "pairs");
    };
    const DecayResult result = compute_decay(request, progress, share);
    if (!share.writes()) return;
    const DecayCurve& curve = result.curve;
    std::optional<DecayCheck> check;
    if (command.check) check = check_no_decay(curve, command.alpha);
    H5Output out = H5Output::create(context.output, context.write_options(inputs));
    write_decay(out, curve, request.params);
    if (result.moments) write_decay_moments(out, *result.moments);
    if (check) write_decay_check(out, *check);
    OutputBatch batch;
    out.finish_into(batch, context.tool, context.command_line, in ? in->history() : "");
    if (!command.plot.empty()) {
        batch.add_text(command.plot, decay_plot_svg(curve, request.params), context.force, inputs);
    }
    batch.commit();
    if (check && !check->passed) {
        throw check_failed_error("Proposition 3.2 check FAILED: " + describe_decay_check(*check));
    }
    if (check) context.note("Proposition 3.2 check passed: " + describe_decay_check(*check));
}

}  // namespace ropekit
