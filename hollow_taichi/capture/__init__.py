"""From your own photos or video to a scene `train` reads: frames (inputs), camera poses by COLMAP
(sfm, through pycolmap: the `process` extra), the Instant-NGP/nerfstudio transforms.json with its
images (layout), and the `process` command's steps (process). Nothing here is imported by the
package's other parts."""
