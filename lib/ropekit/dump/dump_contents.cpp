#include "ropekit/dump/dump_contents.hpp"

#include <cctype>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "ropekit/core/error.hpp"

namespace ropekit {
namespace {

constexpr std::size_t kListed = 4;

// The module names Hugging Face gives the projections whose outputs are q and k.
const char* hf_module_name(Hook hook) {
    if (hook == Hook::q) return "q_proj";
    if (hook == Hook::k) return "k_proj";
    return nullptr;
}

bool is_separator(char c) {
    return c == '/' || c == '.' || c == '_';
}

// `name` with the last component that is all digits replaced by {layer}, or nullopt.
std::optional<std::string> with_layer_placeholder(const std::string& name, std::size_t before) {
    for (std::size_t end = before; end > 0; --end) {
        if (!std::isdigit(static_cast<unsigned char>(name[end - 1]))) continue;
        std::size_t start = end;
        while (start > 0 && std::isdigit(static_cast<unsigned char>(name[start - 1]))) --start;
        const bool whole = (start == 0 || is_separator(name[start - 1])) &&
                           (end == name.size() || is_separator(name[end]));
        if (whole) return name.substr(0, start) + "{layer}" + name.substr(end);
        end = start + 1;
    }
    return std::nullopt;
}

// The template for one dataset `name` ending in `suffix` (after a '/' or '.'), or nullopt.
std::optional<std::string> template_from(const std::string& name, const std::string& suffix,
                                         const std::string& replacement) {
    if (name.size() <= suffix.size()) return std::nullopt;
    const std::size_t at = name.size() - suffix.size();
    if (name.compare(at, suffix.size(), suffix) != 0) return std::nullopt;
    if (name[at - 1] != '/' && name[at - 1] != '.') return std::nullopt;
    auto tmpl = with_layer_placeholder(name, at);
    if (!tmpl) return std::nullopt;
    return tmpl->substr(0, tmpl->size() - suffix.size()) + replacement;
}

std::string shape_text(const H5Input& in, const std::string& name) {
    try {
        return fmt::format("[{}]", fmt::join(in.info(name).shape, ", "));
    } catch (const Error&) {
        return in.is_integer(name) ? "(integers)" : "(not floating point)";
    }
}

}  // namespace

std::vector<std::string> suggest_name_templates(const std::vector<std::string>& names,
                                                const std::vector<Hook>& hooks) {
    for (const std::string& name : names) {
        for (Hook hook : hooks) {
            if (auto t = template_from(name, hook_name(hook), "{hook}")) {
                return {*t};
            }
        }
    }
    std::vector<std::string> per_hook;
    for (Hook hook : hooks) {
        const char* module = hf_module_name(hook);
        if (!module) continue;
        for (const std::string& name : names) {
            if (auto t = template_from(name, module, module)) {
                per_hook.push_back(fmt::format("{}={}", enum_name(kHookNames, hook), *t));
                break;
            }
        }
    }
    return per_hook;
}

std::string dump_contents_hint(const H5Input& in, const std::vector<Hook>& hooks) {
    const std::vector<std::string> names = in.dataset_names();
    if (names.empty()) return "; the file has no datasets";
    std::vector<std::string> listed;
    for (std::size_t i = 0; i < names.size() && i < kListed; ++i) {
        listed.push_back(names[i] + " " + shape_text(in, names[i]));
    }
    std::string hint = fmt::format("; the file has {}", fmt::join(listed, ", "));
    if (names.size() > kListed) hint += fmt::format(" (+{} more)", names.size() - kListed);
    const std::vector<std::string> templates = suggest_name_templates(names, hooks);
    if (!templates.empty()) {
        std::vector<std::string> options;
        for (const std::string& t : templates) options.push_back("--name '" + t + "'");
        hint += fmt::format("; try {}", fmt::join(options, " "));
    }
    return hint;
}

}  // namespace ropekit
