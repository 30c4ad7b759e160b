// phantom2d.h: synthetic salient-object scenes in the public RGB-D and RGB-T
// SOD layouts (image2d/layouts.h), so that the 2D graphs run end to end
// without the real data sets (`umrflow synth rgbd`, `umrflow synth rgbt`).
//
// Each scene has a textured background, one salient object (an ellipse with
// a second lobe half the time) and 2 to 4 distractors. The object's cue is
// split between the two images by a per-scene weight w uniform in [0.15,
// 0.85]: its colour contrast with the background scales with w, its depth or
// heat contrast with 1 - w, so one modality alone is sometimes nearly blind
// and the pair always shows it. Distractors are each conspicuous in one
// modality only: a colour distractor sits at background depth (or is as cool
// as the background), a depth or heat distractor has the background's colour.
// Depth is brighter when nearer; thermal images are gray, brighter when warmer.
// The ground truth is the object's mask, 0 or 255.
//
// Segmentation scenes (`umrflow synth sunrgbd`) are in the SUN-RGBD layout:
// a wall (class 1) above a floor (class 2) and 3 to 6 objects of classes
// 3..`classes`. The object classes come in pairs that share a colour and
// differ in shape in depth: a flat slab at one distance, or a dome bulging
// towards the camera. So colour alone tells the pair, depth alone the shape,
// and only both tell the class. Colours vary by a per-scene illumination
// gain and pixel noise; depth is 16-bit millimetres with sensor noise and
// holes (0). Labels are palette indices, 0 (unlabelled) on one-pixel rings
// around the objects, as annotations leave gaps at edges.
#pragma once

#include <cstdint>
#include <string>

namespace umrflow::image2d {

struct ScenePhantomOptions {
  std::int64_t scenes = 16;
  std::int64_t size = 64;  // width and height in pixels
  std::uint64_t seed = 1;
  bool thermal = false;    // RGB-T (folder T/) instead of RGB-D (folder depth/)
  std::string out;         // root to write RGB/, depth/ or T/, GT/ into
};

/// Writes `scenes` scenes as out/RGB/<id>.png, out/depth|T/<id>.png and
/// out/GT/<id>.png with ids 0001, 0002, ...; the same options write the same
/// bytes. Calls `progress(done, total)` after each scene when given. Throws
/// std::runtime_error naming the folder when it cannot be written and
/// std::invalid_argument for fewer than 1 scene or a size below 16.
void write_scene_phantoms(const ScenePhantomOptions& options, void (*progress)(std::int64_t, std::int64_t) = nullptr);

struct SegmentationPhantomOptions {
  std::int64_t train = 48, test = 16;  // scenes in train.txt and test.txt
  std::int64_t size = 64;
  std::int64_t classes = 8;  // wall, floor and classes - 2 object classes (at least 2)
  std::uint64_t seed = 1;
  std::string out;  // root to write image/, depth/, label/, train.txt and test.txt into
};

/// Writes train + test scenes as out/image/<id>.png (RGB), out/depth/<id>.png
/// (16-bit gray, millimetres) and out/label/<id>.png (8-bit palette, class
/// numbers), ids 0001, ...; the first `train` ids go to out/train.txt, the
/// rest to out/test.txt. The same options write the same bytes. Throws as
/// write_scene_phantoms, and std::invalid_argument for fewer than 4 classes
/// or more than 255.
void write_segmentation_phantoms(const SegmentationPhantomOptions& options, void (*progress)(std::int64_t, std::int64_t) = nullptr);

}  // namespace umrflow::image2d
