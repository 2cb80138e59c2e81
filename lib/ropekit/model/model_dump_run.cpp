#include "ropekit/model/model_dump_run.hpp"

#include <fmt/format.h>

#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"
#include "ropekit/model/load_model.hpp"
#include "ropekit/model/model_dump.hpp"
#include "ropekit/model/sharded_dump.hpp"
#include "ropekit/model/text_dump.hpp"

namespace ropekit {
namespace {

TokenSource token_source(const RopeDumpCommand& command) {
    TokenSource source;
    source.file = command.tokens;
    source.ids = command.ids;
    if (command.sample) {
        SampleSpec sample;
        sample.count = *command.sample;
        sample.length = command.length.value_or(kDefaultDumpLength);
        sample.seed = command.seed;
        sample.temperature = command.temperature;
        sample.batch = command.batch;
        source.sample = sample;
    }
    return source;
}

// Everything but the layers and the schedule, which need the model.
DumpRequest dump_request(const RopeDumpCommand& command) {
    if (command.reverse && !command.p) throw usage_error("--reverse needs --p");
    if (command.length && !command.sample && command.text.path.empty()) {
        throw usage_error("--length needs --sample or --text");
    }
    DumpRequest request;
    request.hooks =
        command.what.empty() ? std::vector<Hook>{} : parse_hooks(command.what, "--what");
    request.batch = command.batch;
    request.theta = command.theta;
    request.p = command.p.value_or(1.0);
    request.reverse = command.reverse;
    request.stored = parse_dtype(command.dtype, "--dtype");
    return request;
}

// The ids to run: sampled or read (TokenSource), or the windows of a text.
Tensor<std::int64_t> token_ids(const RopeDumpCommand& command, const LlamaModel& model,
                               const RunContext& context, std::optional<TextWindows>& windows) {
    if (!command.text.path.empty()) {
        windows = read_text_windows(command.model, model.config().vocab_size, command.text,
                                    command.length.value_or(kDefaultDumpLength));
        return windows->ids;
    }
    return read_token_source(model, token_source(command), [&](std::size_t done) {
        context.progress(done, *command.sample, "sampled sequences");
    });
}

// --shard-size or mpirun: this part's shards. Sampled sequences are drawn by this part only (each
// seeded by its index in the run); a token file or list is read whole by every part.
DumpSummary run_sharded_dump(const RopeDumpCommand& command, const LlamaModel& model,
                             const DumpRequest& request, const RunContext& context,
                             const WorkShare& share) {
    if (!command.text.path.empty()) {
        throw usage_error("--shard-size and mpirun do not take --text (yet)");
    }
    const TokenSource source = token_source(command);
    Tensor<std::int64_t> ids;
    if (!source.sample) ids = read_token_source(model, source);
    const std::size_t n = source.sample ? source.sample->count : ids.shape[0];
    const ShardPlan plan = plan_shards(context.output, n, command.shard_size, share);
    std::size_t ids_first = 0;
    if (source.sample && (plan.end() > plan.begin() || n == 0)) {
        TokenSource part = source;
        part.sample->first = ids_first = plan.begin();
        part.sample->count = plan.end() - plan.begin();
        ids = read_token_source(model, part, [&](std::size_t done) {
            context.note(fmt::format("sampled {}/{} sequences", done, part.sample->count));
        });
    }
    return write_sharded_dump(model, ids, ids_first, request, plan, context,
                              {command.model, command.tokens.value_or("")}, describe(source),
                              share);
}

}  // namespace

void run_rope_dump(const RopeDumpCommand& command, const RunContext& context,
                   const WorkShare& share) {
    DumpRequest request = dump_request(command);
    const LlamaModel model = load_model(command.model);
    request.layers = parse_index_spec(command.layers, model.config().n_layers, "--layers");
    request.schedule = override_schedule(model, command.theta, command.p, command.reverse);
    request.local_schedule =
        override_local_schedule(model, command.theta, command.p, command.reverse);
    if (command.shard_size > 0 || share.parts > 1) {
        const DumpSummary summary = run_sharded_dump(command, model, request, context, share);
        if (share.writes()) context.print(summary_line(summary) + "\n");
        return;
    }
    std::optional<TextWindows> windows;
    const Tensor<std::int64_t> ids = token_ids(command, model, context, windows);
    H5Output out = H5Output::create(
        context.output,
        context.write_options({command.model, command.tokens.value_or(""), command.text.path}));
    const DumpSummary summary = write_model_dump(model, ids, request, out, [&](std::size_t done) {
        context.progress(done, ids.shape[0], "sequences");
    });
    if (!windows) out.set_attr("/", "token_source", describe(token_source(command)));
    if (command.sample) {
        const std::vector<std::string> texts = decoded_sequences(command.model, ids);
        if (!texts.empty()) out.set_attr("tokens", "text", texts);
    }
    const std::string line =
        windows ? record_text_perplexity(out, *windows, summary) : summary_line(summary);
    out.commit(context.tool, context.command_line);
    context.print(line + "\n");
}

}  // namespace ropekit
