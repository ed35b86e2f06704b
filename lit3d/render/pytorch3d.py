"""PyTorch3D back-end: the renderer the 3D-MEI paper used (fast on GPUs; optional dependency).

``MeshRasterizer`` + ``SoftPhongShader`` + point lights, set up to render the same scene as
:class:`~lit3d.render.mitsuba.MitsubaRenderer` (contract in :mod:`lit3d.render.base`): the point
light falls off with the inverse square of the distance and is scaled by ``1/π`` (a Lambertian
BRDF), the grey background adds an ambient term ``albedo · background``, no specular, two-sided
shading. Differences that remain: PyTorch3D samples pixel centres (Mitsuba averages over the pixel),
has no shadows, and weights vertex normals by face area.

PyTorch3D is imported lazily; without it, constructing this renderer raises ``ImportError`` naming
how to install it.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from lit3d.data.views import Views
from lit3d.render.base import Renderer, Seed

INSTALL_HINT = (
    "PyTorch3D is not installed. It is optional (the default renderer is Mitsuba); install it "
    "following https://github.com/facebookresearch/pytorch3d/blob/main/INSTALL.md "
    "(on Linux with Python >= 3.9 this means building it from source against your torch)."
)


def import_pytorch3d():
    """Imports ``pytorch3d.renderer`` or raises ``ImportError`` with installation instructions."""
    try:
        import pytorch3d.renderer as p3d_renderer
        import pytorch3d.structures as p3d_structures
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return p3d_renderer, p3d_structures


@functools.lru_cache(maxsize=1)
def _inverse_square_point_lights(p3d_renderer):
    """A ``PointLights`` subclass with ``I/(π r²)`` fall-off and two-sided normals."""
    from pytorch3d.renderer.lighting import diffuse as lambert

    class InverseSquarePointLights(p3d_renderer.PointLights):
        def __init__(self, intensity: Tensor, camera_position: Tensor, **kwargs):
            super().__init__(**kwargs)
            self.intensity = intensity  # (N,)
            self.camera_position = camera_position  # (N, 3)

        def _broadcast(self, value: Tensor, points: Tensor) -> Tensor:
            shape = (value.shape[0],) + (1,) * (points.ndim - 2) + (value.shape[-1],)
            return value.reshape(shape)

        def diffuse(self, normals: Tensor, points: Tensor) -> Tensor:
            location = self.reshape_location(points)
            direction = location - points
            to_camera = self._broadcast(self.camera_position, points) - points
            facing = torch.sign((normals * to_camera).sum(-1, keepdim=True))
            normals = normals * torch.where(facing == 0, torch.ones_like(facing), facing)
            r2 = direction.pow(2).sum(-1, keepdim=True)
            scale = self._broadcast(self.intensity[:, None], points) / (math.pi * r2)
            return lambert(normals=normals, color=self.diffuse_color, direction=direction) * scale

        def specular(self, normals, points, camera_position, shininess) -> Tensor:
            return torch.zeros_like(points)

    return InverseSquarePointLights


def faces_per_bin(num_faces: int) -> int:
    """``max_faces_per_bin`` of PyTorch3D's coarse-to-fine rasterizer (its own bin size kept):
    room in every bin for all ``num_faces`` faces, so a dense mesh never overflows a bin ("bin
    size too small", which drops faces). Memory: ``bins × max_faces_per_bin`` int32, e.g.
    64 bins × 40k faces = 10 MB."""
    return max(10_000, int(num_faces))


class PyTorch3DRenderer(Renderer):
    """Differentiable PyTorch3D renderer of one diffuse mesh (contract: :mod:`lit3d.render.base`).

    The soft rasterizer's settings follow PyTorch3D's ``SoftPhongShader`` set-up for mesh
    fitting: a face's influence falls off over ``blur_sigma`` (NDC² units) and
    ``blur_radius = log(1/1e-4 − 1)·blur_sigma`` keeps the faces that still weigh 1e-4;
    ``gamma`` sets how sharply the nearest faces win the z-blend. The 3D-MEI paper does not state
    its settings; these are PyTorch3D's defaults for a nearly hard silhouette, which matches
    Mitsuba's image away from silhouettes (``tests/test_render.py``).

    Args:
        image_size: output height = width, pixels.
        albedo: diffuse reflectance in [0, 1].
        background: radiance of the uniform grey background (and ambient light).
        blur_sigma: ``BlendParams.sigma`` of the soft rasterizer (silhouette smoothness).
        gamma: ``BlendParams.gamma`` (z-blending sharpness).
        faces_per_pixel: faces blended per pixel.
        max_faces_per_bin: room per rasterizer bin; ``None``: every face (:func:`faces_per_bin`).
    """

    def __init__(
        self,
        image_size: int = 64,
        albedo: float = 0.8,
        background: float = 0.3,
        blur_sigma: float = 1e-5,
        gamma: float = 1e-4,
        faces_per_pixel: int = 4,
        max_faces_per_bin: int | None = None,
    ):
        super().__init__(image_size=image_size, albedo=albedo, background=background)
        if not blur_sigma > 0 or not gamma > 0 or faces_per_pixel < 1:
            raise ValueError("need blur_sigma > 0, gamma > 0 and faces_per_pixel >= 1")
        import_pytorch3d()  # fails here, naming how to install it, rather than at the first render
        self.blur_sigma, self.gamma = float(blur_sigma), float(gamma)
        self.faces_per_pixel = int(faces_per_pixel)
        self.max_faces_per_bin = None if max_faces_per_bin is None else int(max_faces_per_bin)

    def render(
        self, vertices: Tensor, faces: Tensor, views: Views, seed: Seed = 0, spp: int | None = None,
        colors: Tensor | None = None,
    ) -> Tensor:
        p3d, structures = import_pytorch3d()  # imported once; the renderer holds no modules
        device = vertices.device
        views = views.to(device)
        b = len(views)
        verts = vertices.float().expand(b, -1, -1) if vertices.ndim == 2 else vertices.float()
        face_batch = faces.to(device).long().expand(b, -1, -1)
        albedo = (torch.full_like(verts, self.albedo) if colors is None
                  else colors.float().to(device).expand(b, -1, -1))
        textures = p3d.TexturesVertex(albedo)
        meshes = structures.Meshes(verts=verts, faces=face_batch, textures=textures)
        rotation, translation = p3d.look_at_view_transform(
            eye=views.camera_position, at=views.camera_target, up=views.camera_up, device=device
        )
        cameras = p3d.FoVPerspectiveCameras(
            R=rotation, T=translation, fov=views.fov_deg, degrees=True, znear=0.01, zfar=100.0,
            device=device,
        )
        lights = _inverse_square_point_lights(p3d)(
            intensity=views.light_intensity,
            camera_position=views.camera_position,
            location=views.light_position,
            ambient_color=torch.full((b, 3), self.background, device=device),
            diffuse_color=torch.ones(b, 3, device=device),
            specular_color=torch.zeros(b, 3, device=device),
            device=device,
        )
        materials = p3d.Materials(
            ambient_color=torch.ones(1, 3, device=device),
            diffuse_color=torch.ones(1, 3, device=device),
            specular_color=torch.zeros(1, 3, device=device),
            device=device,
        )
        blend = p3d.BlendParams(sigma=self.blur_sigma, gamma=self.gamma,
                                background_color=(self.background,) * 3)
        raster = p3d.RasterizationSettings(
            image_size=self.image_size,
            blur_radius=math.log(1.0 / 1e-4 - 1.0) * self.blur_sigma,
            faces_per_pixel=self.faces_per_pixel,
            perspective_correct=True,
            max_faces_per_bin=self.max_faces_per_bin or faces_per_bin(int(faces.shape[0])),
        )
        renderer = p3d.MeshRenderer(
            rasterizer=p3d.MeshRasterizer(cameras=cameras, raster_settings=raster),
            shader=p3d.SoftPhongShader(device=device, cameras=cameras, lights=lights,
                                       materials=materials, blend_params=blend),
        )
        images = renderer(meshes)  # (B, H, W, 4)
        return images[..., :3].permute(0, 3, 1, 2).contiguous()
