#include <algorithm>
#include <variant>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ropekit/core/error.hpp"
#include "ropekit/merge/merge_check_internal.hpp"

namespace ropekit {
namespace {

const std::set<std::string> kProvenance{"ropekit_version", "command_line", "history"};

std::string attr_text(const H5Input& in, const std::string& name) {
    const std::optional<AttrValue> value = in.attr("/", name);
    if (!value) return "(absent)";
    return std::visit([](const auto& v) { return fmt::format("{}", v); }, *value);
}

std::string mismatch(const H5Input& first, const std::string& mine, const std::string& theirs) {
    return fmt::format("{}, but {} has {} (only outputs of the same tool and options merge)", mine,
                       first.name(), theirs);
}

void check_attributes(const H5Input& first, const H5Input& other, const MergeSchema& schema) {
    std::vector<std::string> names = first.attr_names("/");
    for (const std::string& name : other.attr_names("/")) names.push_back(name);
    for (const std::string& name : names) {
        if (kProvenance.count(name) || schema.additive_attributes.count(name)) continue;
        const std::string a = attr_text(first, name), b = attr_text(other, name);
        if (a != b) throw data_error(other.name(), "/@" + name, mismatch(first, b, a));
    }
}

std::string values_text(const H5Input& in, const std::string& dataset) {
    if (in.is_integer(dataset)) return fmt::format("{}", in.read_int64(dataset).data);
    return fmt::format("{}", in.read_double(dataset).data);
}

void check_datasets(const H5Input& first, const H5Input& other, const MergeSchema& schema) {
    auto compared = [&](const H5Input& in) {
        std::vector<std::string> names = in.dataset_names();
        names.erase(std::remove_if(
                        names.begin(), names.end(),
                        [&](const std::string& n) { return schema.derived_datasets.count(n) > 0; }),
                    names.end());
        std::sort(names.begin(), names.end());
        return names;
    };
    const std::vector<std::string> a = compared(first), b = compared(other);
    if (a != b) {
        throw data_error(other.name(), "",
                         mismatch(first, fmt::format("datasets {}", b), fmt::format("{}", a)));
    }
    for (const std::string& name : a) {
        if (schema.fixed_datasets.count(name)) {
            const std::string va = values_text(first, name), vb = values_text(other, name);
            if (va != vb) throw data_error(other.name(), name, mismatch(first, vb, va));
        } else if (!first.is_integer(name)) {
            const Shape sa = first.info(name).shape, sb = other.info(name).shape;
            if (sa != sb) {
                throw data_error(other.name(), name,
                                 mismatch(first, shape_string(sb), shape_string(sa)));
            }
        }
    }
}

}  // namespace

std::string output_tool(const H5Input& in) {
    const std::optional<std::string> tool = in.attr_string("/", "tool");
    if (!tool) throw data_error(in.name(), "/@tool", "no such attribute: not a ropekit output");
    return *tool;
}

void check_outputs_agree(const std::vector<H5Input>& files, const MergeSchema& schema) {
    for (std::size_t i = 1; i < files.size(); ++i) {
        const std::string tool = output_tool(files[i]);
        if (tool != schema.tool) {
            throw data_error(files[i].name(), "/@tool",
                             fmt::format("made by {}, but {} by {} (only outputs of the same tool "
                                         "merge)",
                                         tool, files.front().name(), schema.tool));
        }
        check_attributes(files.front(), files[i], schema);
        check_datasets(files.front(), files[i], schema);
    }
}

}  // namespace ropekit
