#include "ropekit/analysis/key_construction_run.hpp"

#include <fmt/format.h>

#include "ropekit/analysis/key_construction.hpp"
#include "ropekit/core/error.hpp"

namespace ropekit {
namespace {

void write_head(H5Output& out, const KeyConstructionCommand& command, const QueryChoice& q,
                const Schedule& s, const RunContext& context) {
    HeadOptions options;
    options.head = parse_head_spec(command.head);
    options.tokens = command.tokens ? command.tokens : 1024;
    options.epsilon = command.epsilon;
    options.model_scale = command.scale == "sqrt";
    options.write_pattern = !command.no_pattern;
    ConstructedHead head = build_head(q.values, s, options);
    const ConstructedHeadResult& r = head.result;
    context.note(
        fmt::format("smallest scale {:.6g} (paper's sufficient bound {:.6g}); stored "
                    "||psi||^2 = {:.6g} with attn_scale {:.6g}",
                    r.scale.scale_min, r.scale.scale_bound, r.psi_norm2, r.attn_scale));
    write_head_dump(out, head, s, command.theta, options);
    out.set_attr("/", "chunks", command.chunks);
    out.set_attr("/", "query_source", q.source);
    context.note(fmt::format("min attention on the target {:.6f} (>= {:.6f})", r.min_alpha,
                             1 - command.epsilon));
}

void write_key(H5Output& out, const KeyConstructionCommand& command, const QueryChoice& q,
               const Schedule& s, const RunContext& context) {
    const KeyConstruction k =
        construct_key(q.values, s, command.offset, command.tokens ? command.tokens : 8192);
    write_key_construction(out, k, s, command.theta, command.chunks, q.source);
    context.note(
        fmt::format("argmax offset {}, margin {:.6g}", k.offsets[k.peak.argmax], k.peak.margin));
}

}  // namespace

void run_construct_key(const KeyConstructionCommand& command, const RunContext& context) {
    if (command.scale != "sqrt" && command.scale != "none") {
        throw usage_error("--scale: expected sqrt or none, got '" + command.scale + "'");
    }
    const Schedule s = make_schedule(command.head_dim, command.theta, parse_layout(command.layout));
    QueryChoice q =
        choose_query(command.head_dim, command.query_seed, command.query_file, command.row);
    keep_chunks(q.values, s, parse_chunk_spec(command.chunks, s.frequency_count()));
    H5Output out = H5Output::create(context.output, context.write_options({q.file}));
    if (command.head.empty()) {
        write_key(out, command, q, s, context);
    } else {
        write_head(out, command, q, s, context);
    }
    out.commit(context.tool, context.command_line, q.history);
}

}  // namespace ropekit
