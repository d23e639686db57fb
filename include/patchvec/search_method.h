// How a model's predictions search its memory bank: exactly, or through a shortlist whose image
// scores are still exact (see docs/performance.md, "Large banks").
#pragma once

#include <cstdint>
#include <string_view>

namespace pv {

enum class SearchMethod {
  kAuto,       // kShortlist for a bank of at least kShortlistMinSize vectors, else kExact
  kExact,      // every patch's nearest bank vector, exactly
  kShortlist,  // each patch's nearest among a shortlist by a low-dimensional estimate; the image
               // score (its largest patch distance, m* and its neighbours) measured exactly, so
               // only the anomaly map may differ where a patch's neighbour was missed
};

// Measured on a 78,400-patch bank of fine-grained embeddings (1,000 training images), search
// alone: on AVX2 exact 1.3-1.7 s an image, shortlist 0.25 s; with AMX exact 0.28 s (the whole
// bank's bfloat16 product; partitioned, 0.81 s) and shortlist 0.10 s. The exact search depends
// on how well the bank's clusters prune (on coarser embeddings, with AMX, 0.07 s partitioned),
// the shortlist hardly; on a 14,112-patch bank whose clusters prune well the exact search was
// twice as fast as the shortlist.
inline constexpr std::int64_t kShortlistMinSize = 32768;

// "auto", "exact", "shortlist": the one string form (CLI, JSON).
const char* search_method_name(SearchMethod method);

// The method `name` spells; throws pv::Error naming `setting` for anything else.
SearchMethod parse_search_method(std::string_view name, std::string_view setting);

// What `method` means for a bank of `bank_size` vectors on this CPU: kExact or kShortlist.
// Thread-safe.
SearchMethod resolve_search_method(SearchMethod method, std::int64_t bank_size);

}  // namespace pv
