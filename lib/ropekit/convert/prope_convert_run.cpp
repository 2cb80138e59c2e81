#include "ropekit/convert/prope_convert_run.hpp"

#include "ropekit/convert/prope_convert.hpp"
#include "ropekit/core/error.hpp"

namespace ropekit {
namespace {

PropeRequest prope_request(const PropeConvertCommand& command) {
    PropeRequest request;
    if (!(command.p >= 0.0 && command.p <= 1.0)) throw usage_error("--p must be in [0, 1]");
    request.p = command.p;
    if (command.theta && !(*command.theta > 1.0)) throw usage_error("--theta must be above 1");
    request.theta = command.theta;
    request.reverse = command.reverse;
    request.encoding = parse_encoding(command.encoding);
    return request;
}

InputKind input_kind(const PropeConvertCommand& command) {
    if (!command.input_kind.empty()) return parse_input_kind(command.input_kind);
    return command.input == "-" ? InputKind::hdf5 : detect_input_kind(command.input);
}

}  // namespace

void run_prope_convert(const PropeConvertCommand& command, const RunContext& context) {
    ConvertOptions options;
    options.request = prope_request(command);
    options.copy = command.copy;
    options.force = context.force;
    options.note = context.note;
    options.names = parse_dump_names(command.dump.names, std::nullopt);
    options.axes = parse_vector_axes(command.dump.axes);
    options.overrides = command.dump.overrides();
    options.tool = context.tool;
    options.command_line = context.command_line;
    const InputKind kind = input_kind(command);
    for (const std::string& line : convert(kind, command.input, context.output, options).lines()) {
        context.note(line);
    }
}

}  // namespace ropekit
