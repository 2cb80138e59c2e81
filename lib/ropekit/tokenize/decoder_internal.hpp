#pragma once
// Decoders of tokenizer.json files, as Hugging Face chains them over token strings: Sequence,
// Replace, ByteFallback, Fuse, Strip, ByteLevel and Metaspace. Any other type is refused by name.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ropekit/tokenize/regex_internal.hpp"

namespace ropekit {

class Decoder {
  public:
    static Decoder from_json(const nlohmann::json& spec, const std::string& source);

    void replace(std::string from, std::string to);
    void byte_fallback();
    void fuse();
    void strip(std::string content, std::size_t start, std::size_t stop);
    void byte_level();

    // The text of the token strings; without any step they are joined with spaces.
    std::string decode(std::vector<std::string> tokens) const;

  private:
    enum class Kind { replace, byte_fallback, fuse, strip, byte_level, metaspace };
    struct Step {
        Kind kind;
        std::string from, to;  // replace; strip's content in `from`; metaspace's replacement
        std::shared_ptr<Regex> regex;
        std::size_t start = 0, stop = 0;  // strip
        bool prepend = true;              // metaspace: the first token's replacement is dropped
    };
    void add(const nlohmann::json& spec, const std::string& source);
    static void apply(const Step& step, std::vector<std::string>& tokens);

    std::vector<Step> steps_;
};

}  // namespace ropekit
