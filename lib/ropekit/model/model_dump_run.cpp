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

}  // namespace

void run_rope_dump(const RopeDumpCommand& command, const RunContext& context) {
    DumpRequest request = dump_request(command);
    const LlamaModel model = load_model(command.model);
    request.layers = parse_index_spec(command.layers, model.config().n_layers, "--layers");
    request.schedule = override_schedule(model, command.theta, command.p, command.reverse);
    std::optional<TextWindows> windows;
    const Tensor<std::int64_t> ids = token_ids(command, model, context, windows);
    if (command.shard_size > 0) {
        if (windows) throw usage_error("--shard-size does not take --text (yet)");
        const DumpSummary summary = write_sharded_dump(
            model, ids, request, command.shard_size, context,
            {command.model, command.tokens.value_or("")}, describe(token_source(command)));
        context.print(summary_line(summary) + "\n");
        return;
    }
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
