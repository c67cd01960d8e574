//! The comparison graph of each prompt: responses are nodes, compared pairs are edges. What
//! the pair-sum term does depends on it and on which node won each pair
//! ([`super::comparison_graph`] has the theory and its check against Newton's method): over a
//! prompt's pairs Σ (r_a + r_b)² is rᵀ(D + A)r, the signless Laplacian form, singular exactly
//! on the bipartite components, whose null vector is +1 on one side and −1 on the other. Each
//! connected component is one of three kinds:
//!
//! - bipartite, every winner on one side ([`ComponentKind::OneSided`]; a single pair always):
//!   moving along the null vector raises every margin, the spread r_a − r_b is unbounded on
//!   separable data;
//! - bipartite, winners on both sides ([`ComponentKind::TwoSided`]; a path a ≻ b ≻ c, a star
//!   whose centre ranks in the middle, a pair labelled both ways): the spread is bounded;
//! - with an odd cycle ([`ComponentKind::OddCycle`]): every reward is pinned.
//!
//! The labels are the rows as read, repeats and contradictions included: a component counts as
//! two-sided as soon as one row's winner sits on each side. A prompt lies wholly in one split
//! (and an evaluation file's prompts are its own), so a component's kind is the same read from
//! the whole file or from the split that holds it.

use std::collections::HashSet;

use serde::Serialize;

use super::pair::Pair;
use crate::experiment::metric::GRAPH_KINDS;

/// The kind of a connected component of a labelled comparison graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// Bipartite with every winner on one side: the pair-sum term leaves the spread free.
    OneSided,
    /// Bipartite with winners on both sides: the spread is bounded.
    TwoSided,
    /// Contains an odd cycle: D + A is positive definite there, every reward is pinned.
    OddCycle,
}

impl ComponentKind {
    /// Every kind, in the order of [`GRAPH_KINDS`].
    pub const ALL: [ComponentKind; 3] =
        [ComponentKind::OneSided, ComponentKind::TwoSided, ComponentKind::OddCycle];

    /// Position in [`ComponentKind::ALL`] and [`GRAPH_KINDS`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The suffix of the kind's metrics (`accuracy_one_sided`, …).
    pub fn suffix(self) -> &'static str {
        GRAPH_KINDS[self.index()]
    }

    /// Whether the spread r_w − r_l of the component's pairs stays bounded at the optimum of
    /// the free-reward objective (λ > 0).
    pub fn bounded(self) -> bool {
        self != ComponentKind::OneSided
    }
}

/// One prompt's graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PromptGraph {
    /// Responses that appear in at least one pair.
    pub responses: usize,
    /// Labelled pairs (rows), repeats included.
    pub pairs: usize,
    /// Distinct compared response pairs (edges).
    pub edges: usize,
    /// Connected components with at least one edge, by kind, indexed by [`ComponentKind::index`].
    pub components: [usize; 3],
}

/// The comparison graphs of all prompts.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonGraphs {
    /// Kind of the component each pair lies in, `[P]`.
    pub pair_kind: Vec<ComponentKind>,
    /// Kind of each component with a pair, in the order of its first pair.
    pub components: Vec<ComponentKind>,
    /// Each prompt's graph, `[X]`.
    pub prompts: Vec<PromptGraph>,
    /// Rows that repeat an earlier row's comparison in the same direction.
    pub duplicates: usize,
    /// Response pairs labelled both ways (a ≻ b and b ≻ a): ties in effect.
    pub contradictions: usize,
    /// Two-sided components that are two responses labelled both ways, nothing else: two-sided
    /// by a contradiction, not by a ranking (a ≻ b ≻ c).
    pub contradicted_pair_components: usize,
}

impl ComparisonGraphs {
    /// The graphs of `n_prompts` prompts with responses of prompt `prompt_of[r]` (`[R]`) and
    /// `pairs` (winner `chosen`, loser `rejected`) between responses of one prompt.
    ///
    /// Union–find with parities: joining a and b records that their colours differ; an edge
    /// between two responses already joined with the same colour closes an odd cycle. Once all
    /// pairs are joined, each winner's colour relative to its root says which side it sits on.
    pub fn new(n_prompts: usize, prompt_of: &[usize], pairs: &[Pair]) -> ComparisonGraphs {
        let n = prompt_of.len();
        let mut parent: Vec<usize> = (0..n).collect();
        // Colour of each node relative to its parent (0 same, 1 other).
        let mut parity = vec![0u8; n];
        let mut odd = vec![false; n];
        fn find(parent: &mut [usize], parity: &mut [u8], x: usize) -> (usize, u8) {
            let mut path = Vec::new();
            let mut r = x;
            while parent[r] != r {
                path.push(r);
                r = parent[r];
            }
            // Compress: each node on the path points at the root with its colour relative to it.
            let mut acc = 0u8;
            for &node in path.iter().rev() {
                acc ^= parity[node];
                parity[node] = acc;
                parent[node] = r;
            }
            (r, if path.is_empty() { 0 } else { parity[x] })
        }
        let (mut seen, mut edges) = (HashSet::new(), HashSet::new());
        let (mut duplicates, mut contradictions) = (0, 0);
        let mut prompts = vec![PromptGraph::default(); n_prompts];
        let mut in_pair = vec![false; n];
        for p in pairs {
            let (a, b) = (p.chosen, p.rejected);
            prompts[prompt_of[a]].pairs += 1;
            for r in [a, b] {
                if !std::mem::replace(&mut in_pair[r], true) {
                    prompts[prompt_of[r]].responses += 1;
                }
            }
            if !seen.insert((a, b)) {
                duplicates += 1;
            } else if seen.contains(&(b, a)) {
                contradictions += 1;
            }
            if edges.insert((a.min(b), a.max(b))) {
                prompts[prompt_of[a]].edges += 1;
            }
            let ((ra, pa), (rb, pb)) = (find(&mut parent, &mut parity, a), find(&mut parent, &mut parity, b));
            if ra == rb {
                odd[ra] |= pa == pb;
            } else {
                parent[rb] = ra;
                parity[rb] = pa ^ pb ^ 1;
                odd[ra] |= odd[rb];
            }
        }
        // The sides the winners of each root's component sit on: bit c set when a winner has
        // colour c relative to the root. Meaningful on bipartite components only, where the
        // colouring is unique up to a swap of the two sides.
        let mut winner_sides = vec![0u8; n];
        for p in pairs {
            let (root, colour) = find(&mut parent, &mut parity, p.chosen);
            winner_sides[root] |= 1 << colour;
        }
        let mut component_kind: Vec<Option<ComponentKind>> = vec![None; n];
        let mut components = Vec::new();
        let pair_kind = pairs
            .iter()
            .map(|p| {
                let (root, _) = find(&mut parent, &mut parity, p.chosen);
                *component_kind[root].get_or_insert_with(|| {
                    let kind = match (odd[root], winner_sides[root]) {
                        (true, _) => ComponentKind::OddCycle,
                        (false, 0b11) => ComponentKind::TwoSided,
                        (false, _) => ComponentKind::OneSided,
                    };
                    prompts[prompt_of[root]].components[kind.index()] += 1;
                    components.push(kind);
                    kind
                })
            })
            .collect();
        // Responses of each component: a two-sided component of two is one pair both ways.
        let mut size = vec![0usize; n];
        for (r, &seen_in_pair) in in_pair.iter().enumerate() {
            if seen_in_pair {
                size[find(&mut parent, &mut parity, r).0] += 1;
            }
        }
        let contradicted_pair_components =
            (0..n).filter(|&r| component_kind[r] == Some(ComponentKind::TwoSided) && size[r] == 2).count();
        ComparisonGraphs {
            pair_kind,
            components,
            prompts,
            duplicates,
            contradictions,
            contradicted_pair_components,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ComponentKind::{OddCycle as O, OneSided as S, TwoSided as T};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The plain definition: components by breadth-first search, two-coloured as they are
    /// walked; a component has an odd cycle when an edge joins two nodes of one colour, and is
    /// two-sided when its winners (first of each pair) have both colours.
    fn kinds_slow(n: usize, pairs: &[(usize, usize)]) -> Vec<ComponentKind> {
        let mut adj = vec![Vec::new(); n];
        for &(a, b) in pairs {
            adj[a].push(b);
            adj[b].push(a);
        }
        let (mut colour, mut comp) = (vec![None; n], vec![usize::MAX; n]);
        let mut comp_odd = Vec::new();
        for s in 0..n {
            if colour[s].is_some() {
                continue;
            }
            let id = comp_odd.len();
            comp_odd.push(false);
            colour[s] = Some(0);
            let mut queue = std::collections::VecDeque::from([s]);
            while let Some(u) = queue.pop_front() {
                comp[u] = id;
                for &v in &adj[u] {
                    match colour[v] {
                        None => {
                            colour[v] = Some(1 - colour[u].unwrap());
                            queue.push_back(v);
                        }
                        Some(c) if c == colour[u].unwrap() => comp_odd[id] = true,
                        Some(_) => {}
                    }
                }
            }
        }
        pairs
            .iter()
            .map(|&(a, _)| {
                let winner_colours: HashSet<usize> = pairs
                    .iter()
                    .filter(|&&(w, _)| comp[w] == comp[a])
                    .map(|&(w, _)| colour[w].unwrap())
                    .collect();
                match (comp_odd[comp[a]], winner_colours.len()) {
                    (true, _) => O,
                    (false, 2) => T,
                    (false, _) => S,
                }
            })
            .collect()
    }

    fn pairs(list: &[(usize, usize)]) -> Vec<Pair> {
        list.iter().map(|&(chosen, rejected)| Pair { chosen, rejected }).collect()
    }

    /// The kinds of one prompt's graph on `n` responses: per pair, and per component.
    fn kinds(n: usize, list: &[(usize, usize)]) -> (Vec<ComponentKind>, Vec<ComponentKind>) {
        let g = ComparisonGraphs::new(1, &vec![0; n], &pairs(list));
        (g.pair_kind, g.components)
    }

    /// Random labelled graphs of random sizes, densities, directions and edge orders (repeats
    /// and contradictions included): the union–find kinds equal the breadth-first ones, and
    /// all three kinds occur.
    #[test]
    fn component_kinds_match_breadth_first_colouring() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut met = HashSet::new();
        for _ in 0..300 {
            let n = rng.random_range(2..14usize);
            let m = rng.random_range(1..2 * n);
            let list: Vec<(usize, usize)> = (0..m)
                .map(|_| {
                    let a = rng.random_range(0..n);
                    (a, (a + rng.random_range(1..n)) % n)
                })
                .collect();
            let (pair_kind, components) = kinds(n, &list);
            assert_eq!(pair_kind, kinds_slow(n, &list), "{list:?}");
            met.extend(components);
        }
        assert_eq!(met.len(), 3, "{met:?}");
    }

    /// Small graphs whose kind follows from the definition by hand.
    #[test]
    fn kinds_of_hand_built_graphs() {
        let one = |n, list: &[(usize, usize)]| {
            let (pair_kind, components) = kinds(n, list);
            assert_eq!(components.len(), 1, "{list:?}");
            assert!(pair_kind.iter().all(|&k| k == components[0]), "{list:?}");
            components[0]
        };
        // A single pair, either way round.
        assert_eq!(one(2, &[(0, 1)]), S);
        assert_eq!(one(2, &[(1, 0)]), S);
        // Stars around response 0: best or worst is one-sided, ranked in the middle two-sided.
        assert_eq!(one(4, &[(0, 1), (0, 2), (0, 3)]), S);
        assert_eq!(one(4, &[(1, 0), (2, 0), (3, 0)]), S);
        assert_eq!(one(4, &[(1, 0), (0, 2), (0, 3)]), T);
        // The path a ≻ b ≻ c is two-sided; a ≻ b, c ≻ b (b worst) one-sided.
        assert_eq!(one(3, &[(0, 1), (1, 2)]), T);
        assert_eq!(one(3, &[(0, 1), (2, 1)]), S);
        // Even cycles: a directed 4-cycle is two-sided; 0 and 2 beating both 1 and 3, one-sided.
        assert_eq!(one(4, &[(0, 1), (1, 2), (2, 3), (3, 0)]), T);
        assert_eq!(one(4, &[(0, 1), (2, 1), (0, 3), (2, 3)]), S);
        // A triangle, whatever its labels, and a triangle with a tail.
        assert_eq!(one(3, &[(0, 1), (1, 2), (0, 2)]), O);
        assert_eq!(one(3, &[(0, 1), (1, 2), (2, 0)]), O);
        assert_eq!(one(4, &[(0, 1), (1, 2), (0, 2), (3, 0)]), O);
        // Repeats in one direction keep a pair one-sided; a pair labelled both ways is two-sided.
        assert_eq!(one(2, &[(0, 1), (0, 1)]), S);
        assert_eq!(one(2, &[(0, 1), (1, 0)]), T);
        // A star whose centre beats every leaf, one leaf also beating it once: two-sided.
        assert_eq!(one(3, &[(0, 1), (0, 2), (2, 0)]), T);
        // Components are kept apart and listed in the order of their first pair.
        assert_eq!(kinds(5, &[(0, 1), (2, 3), (3, 4), (4, 2)]).1, [S, O]);
        assert_eq!(kinds(7, &[(6, 5), (0, 1), (1, 2)]), (vec![S, T, T], vec![S, T]));
    }

    /// tests/fixtures/trl/graph.jsonl's five prompts, by hand: a triangle; a star whose centre
    /// wins every pair, with a repeated pair (one-sided); a pair labelled both ways
    /// (two-sided); two disjoint edges (one-sided each); a directed 4-cycle (two-sided) beside
    /// a triangle.
    #[test]
    fn hand_built_graphs() {
        let prompt_of = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4];
        let list = [
            (0, 1),
            (1, 2),
            (0, 2),
            (3, 4),
            (3, 5),
            (6, 7),
            (8, 9),
            (3, 4),
            (7, 6),
            (10, 11),
            (12, 13),
            (13, 14),
            (14, 15),
            (15, 12),
            (16, 17),
            (17, 18),
            (18, 16),
        ];
        let g = ComparisonGraphs::new(5, &prompt_of, &pairs(&list));
        assert_eq!(g.pair_kind, [O, O, O, S, S, T, S, S, T, S, T, T, T, T, O, O, O]);
        assert_eq!(g.components, [O, S, T, S, S, T, O]);
        let graph = |responses, pairs, edges, components| PromptGraph { responses, pairs, edges, components };
        assert_eq!(
            g.prompts,
            [
                graph(3, 3, 3, [0, 0, 1]),
                graph(3, 3, 2, [1, 0, 0]),
                graph(2, 2, 1, [0, 1, 0]),
                graph(4, 2, 2, [2, 0, 0]),
                graph(7, 7, 7, [0, 1, 1])
            ]
        );
        assert_eq!((g.duplicates, g.contradictions), (1, 1));
        // Of the two two-sided components, the pair labelled both ways, not the 4-cycle.
        assert_eq!(g.contradicted_pair_components, 1);
    }

    /// The kinds' metric suffixes are the vocabulary's, in its order.
    #[test]
    fn kinds_name_their_metrics() {
        let names: Vec<&str> = ComponentKind::ALL.iter().map(|k| k.suffix()).collect();
        assert_eq!(names, ["one_sided", "two_sided", "odd_cycle"]);
        for k in ComponentKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.suffix()));
        }
        assert!(!S.bounded() && T.bounded() && O.bounded());
    }
}
