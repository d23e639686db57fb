// A model's metadata (pv::ModelInfo) as the JSON header of its .pvm file holds it.
#pragma once

#include <nlohmann/json.hpp>

#include <patchvec/model.h>

#include "patchcore/model_file.h"

namespace pv::patchcore {

nlohmann::json to_json(const ModelInfo& info);

// Sets info.backbone and the copies ModelInfo::options.embedder keeps of it (backbone, weights,
// seed): the one place they are made equal.
void set_backbone(ModelInfo& info, BackboneState backbone);

// Every field present, of its type and within its range (a checksum proves a file unchanged,
// not valid). Throws pv::Error naming the field: "field scoring.sigma is -1, outside ...".
ModelInfo model_info_from(const nlohmann::json& metadata);

// The sections against the metadata: the bank has bank_size vectors of grid.dim values, enough
// neighbours per vector for num_neighbors. Throws pv::Error naming the section (without the file,
// which the caller adds).
void check_contents(const ModelInfo& info, const ModelFileContents& contents);

}  // namespace pv::patchcore
