"""Self-intersection test, plausibility measures, admissible steps and the repulsion barrier."""

import math

import numpy as np
import pytest
import torch
import trimesh

from lit3d.data.views import overhead_views
from lit3d.geometry.feasibility import Admissible, forget_undone, keep_admissible
from lit3d.geometry.intersections import (
    SelfIntersections,
    _pairs_intersect,
    candidate_pairs,
    self_intersecting_faces,
    self_intersecting_pairs,
    self_intersection_fraction,
)
from lit3d.geometry.primitives import IcoSphere, Sheet, Torus
from lit3d.geometry.repulsion import barrier, close_pairs, repulsion_energy
from lit3d.metrics.plausibility import plausibility, view_width


def rotation(seed: float = 0.3) -> torch.Tensor:
    """A generic rotation (no symmetry axis of the ico-sphere aligned with anything)."""
    matrix = trimesh.transformations.random_rotation_matrix(rand=np.array([seed, 0.6, 0.1]))
    return torch.tensor(matrix[:3, :3], dtype=torch.float32)


def two_spheres(offset, rotate: bool = True):
    s = IcoSphere(2).build()
    other = s.vertices @ rotation().T if rotate else s.vertices.clone()
    vertices = torch.cat([s.vertices, other + torch.tensor(offset)])
    faces = torch.cat([s.faces, s.faces + s.vertices.shape[0]])
    return vertices, faces


def folded_sheet(depth: float = 0.6):
    """A sheet whose right half is folded back over the left half, its far end bent down
    through it (``depth > 0``) or up, clear of it (``depth < 0``)."""
    sheet = Sheet(16, 2.0).build()
    v = sheet.vertices.clone()
    right = v[:, 0] > 0.01
    x = v[right, 0]
    # Rotate the right half by ~170 degrees about the y axis, then bend its far end.
    angle = math.radians(170.0)
    v[right, 0] = x * math.cos(angle)
    v[right, 2] = x * math.sin(angle) - depth * x * x
    return v, sheet.faces


def brute_force_pairs(vertices, faces):
    n = faces.shape[0]
    i, j = torch.triu_indices(n, n, 1)
    pairs = torch.stack([i, j], -1)
    corners = vertices.double()[faces]
    hits = [pairs[k:k + 100_000][_pairs_intersect(corners, faces, pairs[k:k + 100_000])]
            for k in range(0, pairs.shape[0], 100_000)]
    return {tuple(p) for p in torch.cat(hits).tolist()}


def test_clean_meshes_have_no_self_intersections():
    sphere = IcoSphere(3).build()
    assert self_intersection_fraction(*sphere) == 0.0
    torus = Torus().build()
    assert self_intersection_fraction(*torus) == 0.0
    sheet = Sheet(32).build()
    v = sheet.vertices.clone()
    v[:, 2] = 0.3 * torch.sin(3 * math.pi * v[:, 0] + v[:, 1])  # corrugated: a height field
    assert self_intersection_fraction(v, sheet.faces) == 0.0


def test_interpenetrating_spheres_intersect_and_match_brute_force():
    vertices, faces = two_spheres([0.7, 0.2, 0.1])
    pairs = {tuple(p) for p in self_intersecting_pairs(vertices, faces).tolist()}
    assert pairs and pairs == brute_force_pairs(vertices, faces)
    involved = self_intersecting_faces(vertices, faces)
    # Every intersecting pair has one face of each sphere; both spheres are involved.
    half = faces.shape[0] // 2
    assert all((i < half) != (j < half) for i, j in pairs)
    assert involved[:half].any() and involved[half:].any()
    # Apart, nothing intersects.
    apart, _ = two_spheres([2.5, 0.2, 0.1])
    assert self_intersection_fraction(apart, faces) == 0.0


def test_sheet_folded_through_itself_intersects():
    vertices, faces = folded_sheet()
    assert self_intersection_fraction(vertices, faces) > 0.0
    vertices, faces = folded_sheet(depth=-0.3)  # folded over but lifted clear: no crossing
    assert self_intersection_fraction(vertices, faces) == 0.0


def test_candidate_pairs_are_the_overlapping_boxes():
    generator = torch.Generator().manual_seed(0)
    vertices = torch.rand(60, 3, generator=generator)
    faces = torch.randint(0, 60, (80, 3), generator=generator)
    faces = faces[(faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2])
                  & (faces[:, 0] != faces[:, 2])]
    corners = vertices.double()[faces]
    lo, hi = corners.min(1).values, corners.max(1).values
    expected = {(i, j) for i in range(len(faces)) for j in range(i + 1, len(faces))
                if bool(((lo[i] <= hi[j]) & (lo[j] <= hi[i])).all())}
    found = {tuple(p) for p in candidate_pairs(vertices, faces).tolist()}
    assert found == expected
    # and the narrow phase over them agrees with testing every pair
    hits = {tuple(p) for p in self_intersecting_pairs(vertices, faces).tolist()}
    assert hits == brute_force_pairs(vertices, faces) and hits


def test_kept_broad_phase_gives_the_same_answers_over_a_sequence_of_steps():
    """SelfIntersections over small steps of a sheet folding through itself (and back), with
    jumps larger than its margin in between: every answer equals the uncached test, the broad
    phase runs again only after a vertex moved half the margin."""
    start, faces = folded_sheet(depth=-0.3)  # clear
    end, _ = folded_sheet(depth=0.6)  # through itself
    test = SelfIntersections(faces)
    generator = torch.Generator().manual_seed(0)
    seen = set()
    for t in [*torch.linspace(0, 1, 40), *torch.linspace(1, 0, 13)]:
        vertices = (1 - t) * start + t * end
        vertices = vertices + 1e-3 * torch.randn(vertices.shape, generator=generator)
        expected = self_intersecting_pairs(vertices, faces)
        assert torch.equal(test.pairs(vertices), expected)
        assert torch.equal(test.involved(vertices), self_intersecting_faces(vertices, faces))
        seen.add(expected.shape[0] > 0)
    assert seen == {True, False}  # both states were met
    builds = test.builds
    assert 1 < builds < 53  # rebuilt on the way, not every step
    # below half the margin the pairs are reused; at half the margin they are found again
    vertices = end.clone()
    test.pairs(vertices)
    builds = test.builds
    vertices[0, 0] += 0.49 * test._margin
    test.pairs(vertices)
    assert test.builds == builds
    vertices[0, 0] += 0.02 * test._margin
    test.pairs(vertices)
    assert test.builds == builds + 1


def test_kept_answers_are_tested_again_only_where_vertices_changed():
    """A guard that undoes part of a step changes part of the mesh: SelfIntersections tests
    again only the pairs with a changed vertex, and its answers stay those of the uncached
    test, whether the change makes an intersection, removes it, or makes none."""
    clear, faces = folded_sheet(depth=-0.3)
    through, _ = folded_sheet(depth=0.6)
    test = SelfIntersections(faces)
    test.pairs(clear)
    builds, tested = test.builds, test.tested
    assert torch.equal(test.pairs(clear), self_intersecting_pairs(clear, faces))
    assert test.tested == tested  # nothing changed: nothing tested
    # One vertex moved a little: only the pairs around it are tested.
    moved = clear.clone()
    moved[40, 2] += 1e-3
    tested = test.tested
    assert torch.equal(test.pairs(moved), self_intersecting_pairs(moved, faces))
    assert 0 < test.tested - tested < 0.2 * test.kept_pairs
    # The folded end alone pushed through (the rest unchanged), and back.
    far = through[:, 0] < through[:, 0].min() + 0.3
    partial = moved.clone()
    partial[far] = through[far]
    for vertices in (partial, moved):
        expected = self_intersecting_pairs(vertices, faces)
        assert torch.equal(test.pairs(vertices), expected)
    assert self_intersecting_pairs(partial, faces).shape[0] > 0
    assert test.builds > builds  # the jump rebuilt the pairs on the way
    # Kept answers that found intersections are returned with the new ones.
    test = SelfIntersections(faces)
    crossing = self_intersecting_pairs(through, faces)
    assert torch.equal(test.pairs(through), crossing) and crossing.shape[0] > 0
    nudged = through.clone()
    nudged[0, 2] += 1e-3  # far from the crossing
    builds, tested = test.builds, test.tested
    assert torch.equal(test.pairs(nudged), self_intersecting_pairs(nudged, faces))
    assert test.builds == builds and 0 < test.tested - tested < 0.2 * test.kept_pairs


def test_touching_is_not_intersecting():
    # Two triangles meeting at one vertex, and a triangle whose vertex touches another's face.
    vertices = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [-1, 0, 1],
                             [0.2, 0.2, 0.0], [0.2, 0.2, -1], [0.5, 0.2, -1]], dtype=torch.float)
    faces = torch.tensor([[0, 1, 2], [0, 3, 4], [5, 6, 7]])
    assert self_intersection_fraction(vertices, faces) == 0.0
    # pushed up by 0.1, the third triangle pierces the first
    vertices[5:, 2] += 0.1
    assert self_intersecting_pairs(vertices, faces).tolist() == [[0, 2]]


def test_plausibility_measures():
    sphere = IcoSphere(3).build()
    views = overhead_views()
    out = plausibility(sphere.vertices * 1.5, sphere.faces, sphere.vertices, views)
    assert out["self_intersections"] == 0.0
    assert out["area_ratio"] == pytest.approx(2.25, rel=1e-5)
    assert out["extents"] == pytest.approx([3.0, 3.0, 3.0], rel=1e-3)
    assert out["view_width"] == pytest.approx(2 * 10 * math.tan(math.radians(7)), rel=1e-6)
    assert out["extent_over_view"] == pytest.approx(3.0 / out["view_width"], rel=1e-3)
    assert out["closed"] and out["genus"] == 0 and out["same_genus"]
    torus = Torus().build()
    assert plausibility(torus.vertices, torus.faces, torus.vertices)["genus"] == 1
    # A sheet twice the view's width: a quarter of its area is in view; open: no topology keys.
    sheet = Sheet(40, 2 * view_width(views)).build()
    out = plausibility(sheet.vertices, sheet.faces, sheet.vertices, views)
    assert out["in_view_fraction"] == pytest.approx(0.25, abs=0.03)
    assert "closed" not in out and out["area_ratio"] == pytest.approx(1.0)
    small = Sheet(8, 1.0).build()
    assert plausibility(small.vertices, small.faces, views=views)["in_view_fraction"] == 1.0


def test_plausibility_sees_two_interpenetrating_closed_spheres():
    vertices, faces = two_spheres([0.7, 0.2, 0.1])
    rest, _ = two_spheres([3.0, 0.0, 0.0])
    out = plausibility(vertices, faces, rest)
    assert out["self_intersections"] > 0 and out["closed"] and out["genus"] == 0


def two_grids():
    """Two parallel 6x6 grids, 0.1 apart in z, and a step that pokes the top grid's centre
    vertex through the bottom grid while shifting a far corner of the bottom grid a little."""
    grid = Sheet(6, 1.0).build()
    top = grid.vertices + torch.tensor([0.0, 0.0, 0.1])
    vertices = torch.cat([grid.vertices, top])
    faces = torch.cat([grid.faces, grid.faces + 49])
    centre = 49 + 24
    step = torch.zeros_like(vertices)
    step[centre] = torch.tensor([0.03, 0.02, -0.3])  # off the bottom vertex below it
    step[0, 0] = -0.05
    return vertices, faces, step, centre


def test_keep_admissible_undoes_the_step_only_where_it_breaks_the_mesh():
    vertices, faces, step, centre = two_grids()
    offsets = torch.zeros_like(vertices)
    test = Admissible(faces, vertices)
    test.reference(vertices)
    before = [offsets.clone()]
    offsets += step
    assert not test(vertices + offsets)
    kept = keep_admissible([offsets], before, lambda: test.violation(vertices + offsets),
                           reach=lambda bad, widen: bad.clone())
    assert test(vertices + offsets)
    assert kept[centre] == 0 and offsets[centre].abs().sum() == 0
    assert kept[0] == 1 and offsets[0, 0] == pytest.approx(-0.05)


def test_keep_admissible_halves_a_step_that_breaks_the_area_bound():
    sheet = Sheet(4, 1.0).build()
    scale = torch.zeros(())
    test = Admissible(sheet.faces, sheet.vertices, intersections=False, max_area_ratio=2.0)
    test.reference(sheet.vertices)
    before = [scale.clone().reshape(1)]
    param = (scale + 1.0).reshape(1)  # area x4 with the full step
    kept = keep_admissible([param], before,
                           lambda: test.violation(sheet.vertices * (1 + param)),
                           reach=lambda bad, widen: torch.ones(1, dtype=torch.bool))
    assert float(kept) == pytest.approx(0.25)  # x1.25 -> area x1.56 <= 2; x1.5 -> x2.25 > 2
    assert test(sheet.vertices * (1 + param))


def test_forget_undone_zeroes_the_momentum_of_undone_entries():
    p = torch.nn.Parameter(torch.zeros(4, 3))
    optimizer = torch.optim.Adam([p], lr=0.1)
    for _ in range(20):
        p.grad = torch.ones(4, 3)
        optimizer.step()
    forget_undone(optimizer, [p], torch.tensor([True, False, False, True]))
    state = optimizer.state[p]
    assert state["exp_avg"][[0, 3]].abs().sum() == 0 and (state["exp_avg"][[1, 2]] != 0).all()
    assert (state["exp_avg_sq"] > 0).all()
    # the next step of a forgotten entry is small, not the bias-corrected jump of a reset Adam
    before = p.detach().clone()
    p.grad = torch.ones(4, 3)
    optimizer.step()
    moved = (before - p.detach()).abs()
    assert (moved[0] < 0.5 * moved[1]).all()


def test_repulsion_pushes_approaching_parts_apart_and_lets_neighbours_bend():
    vertices, faces, _, centre = two_grids()
    rest = vertices.clone()
    rest[49:, 2] += 5.0  # at rest the grids were far apart
    # Grid spacing 1/6: within 0.15 only the vertex above each vertex is close.
    assert close_pairs(vertices, 0.15).shape[0] == 49
    v = vertices.clone().requires_grad_(True)
    energy = repulsion_energy(v, rest, 0.15)
    energy.backward()
    assert energy > 0
    assert v.grad[centre, 2] < 0 and v.grad[24, 2] > 0  # descent lifts the top, lowers the bottom
    # The same two grids 0.1 apart as the initial mesh: their pairs' range is half of that.
    assert float(repulsion_energy(vertices, vertices, 0.15)) == 0.0
    squeezed = vertices.clone()
    squeezed[49:, 2] = 0.04  # closer than half their initial distance
    assert float(repulsion_energy(squeezed, vertices, 0.15)) > 0
    # Bending a sheet leaves its neighbours apart: no energy.
    sheet = Sheet(10, 1.0).build()
    bent = sheet.vertices.clone()
    bent[:, 2] = 0.2 * torch.sin(3 * bent[:, 0])
    assert float(repulsion_energy(bent, sheet.vertices, 0.2)) == 0.0
    assert float(barrier(torch.tensor(0.15), 0.15)) == 0.0
    assert float(barrier(torch.tensor(1e-3), 0.15)) > float(barrier(torch.tensor(0.1), 0.15)) > 0


def test_intersections_of_the_reference_mesh_are_tolerated_until_they_come_free():
    s = IcoSphere(2).build()
    n = s.vertices.shape[0]
    a = s.vertices
    b = s.vertices @ rotation().T + torch.tensor([0.7, 0.2, 0.1])  # pierces a
    c = s.vertices @ rotation(0.7).T + torch.tensor([5.0, 0.0, 0.0])  # far away
    faces = torch.cat([s.faces, s.faces + n, s.faces + 2 * n])
    test = Admissible(faces, torch.cat([a, b, c]))
    test.reference(torch.cat([a, b, c]))
    assert test(torch.cat([a, b, c]))  # the old intersection is tolerated
    bad = test.violation(torch.cat([a, b, c - torch.tensor([5.8, 0.3, 1.2])]))  # c enters a
    assert bad is not None and bad[2 * n:].any() and not bad[n:2 * n].any()
    assert test(torch.cat([a, b + torch.tensor([3.0, -3.0, 0.0]), c]))  # b comes free ...
    assert not test(torch.cat([a, b, c]))  # ... and may not go back


def test_vertex_normals_point_out():
    from lit3d.geometry.topology import vertex_normals

    sphere = IcoSphere(2).build()
    normals = vertex_normals(sphere.vertices, sphere.faces)
    radial = torch.nn.functional.normalize(sphere.vertices, dim=-1)
    assert ((normals * radial).sum(-1) > 0.99).all()
    sheet = Sheet(4).build()
    assert torch.allclose(vertex_normals(sheet.vertices, sheet.faces),
                          torch.tensor([0.0, 0.0, 1.0]).expand(25, 3))
