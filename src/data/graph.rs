//! The comparison graph of each prompt: responses are nodes, compared pairs are edges
//! (direction and repeats ignored). What the pair-sum term does depends on it: over a prompt's
//! pairs Σ (r_a + r_b)² is rᵀ(D + A)r, the signless Laplacian form, which is singular exactly
//! on the bipartite components. On a bipartite component (a single pair, a star, an even
//! cycle) adding +t to one side and −t to the other leaves every pair sum unchanged, so the
//! term does not pin its rewards; whether the spread r_a − r_b is then free depends on the
//! labels' directions too (free only when every winner sits on one side:
//! [`super::comparison_graph`]). A component with an odd cycle pins every reward.

use std::collections::HashSet;

use serde::Serialize;

use super::pair::Pair;

/// The kind of the connected component a pair lies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// Two-colourable: the pair-sum term does not pin the rewards (the spread is free when every
    /// winner sits on one side).
    Bipartite,
    /// Contains an odd cycle: the pair-sum term pins every reward.
    OddCycle,
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
    /// Connected components with at least one edge, by kind.
    pub bipartite_components: usize,
    pub odd_cycle_components: usize,
}

/// The comparison graphs of all prompts.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparisonGraphs {
    /// Kind of the component each pair lies in, `[P]`.
    pub pair_kind: Vec<ComponentKind>,
    /// Each prompt's graph, `[X]`.
    pub prompts: Vec<PromptGraph>,
    /// Rows that repeat an earlier row's comparison in the same direction.
    pub duplicates: usize,
    /// Response pairs labelled both ways (a ≻ b and b ≻ a): ties in effect.
    pub contradictions: usize,
}

impl ComparisonGraphs {
    /// The graphs of `n_prompts` prompts with responses of prompt `prompt_of[r]` (`[R]`) and
    /// `pairs` between responses of one prompt.
    ///
    /// Union–find with parities: joining a and b records that their colours differ; an edge
    /// between two responses already joined with the same colour closes an odd cycle.
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
        let mut counted = vec![false; n];
        let pair_kind = pairs
            .iter()
            .map(|p| {
                let (root, _) = find(&mut parent, &mut parity, p.chosen);
                let kind = if odd[root] { ComponentKind::OddCycle } else { ComponentKind::Bipartite };
                if !std::mem::replace(&mut counted[root], true) {
                    let g = &mut prompts[prompt_of[root]];
                    match kind {
                        ComponentKind::Bipartite => g.bipartite_components += 1,
                        ComponentKind::OddCycle => g.odd_cycle_components += 1,
                    }
                }
                kind
            })
            .collect();
        ComparisonGraphs { pair_kind, prompts, duplicates, contradictions }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// The plain definition: components by breadth-first search, two-coloured as they are
    /// walked; a component is bipartite when no edge joins two nodes of one colour.
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
            .map(|&(a, _)| if comp_odd[comp[a]] { ComponentKind::OddCycle } else { ComponentKind::Bipartite })
            .collect()
    }

    fn pairs(list: &[(usize, usize)]) -> Vec<Pair> {
        list.iter().map(|&(chosen, rejected)| Pair { chosen, rejected }).collect()
    }

    /// Random graphs of random sizes, densities and edge orders: the union–find kinds equal
    /// the breadth-first ones.
    #[test]
    fn component_kinds_match_breadth_first_colouring() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..300 {
            let n = rng.random_range(2..14usize);
            let m = rng.random_range(1..2 * n);
            let list: Vec<(usize, usize)> = (0..m)
                .map(|_| {
                    let a = rng.random_range(0..n);
                    (a, (a + rng.random_range(1..n)) % n)
                })
                .collect();
            let g = ComparisonGraphs::new(1, &vec![0; n], &pairs(&list));
            assert_eq!(g.pair_kind, kinds_slow(n, &list), "{list:?}");
        }
    }

    /// tests/fixtures/trl/graph.jsonl's five prompts, by hand: a triangle; a star with a
    /// repeated pair; a pair labelled both ways; two disjoint edges; a 4-cycle beside a
    /// triangle.
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
        use ComponentKind::{Bipartite as B, OddCycle as O};
        assert_eq!(g.pair_kind, [O, O, O, B, B, B, B, B, B, B, B, B, B, B, O, O, O]);
        let graph = |responses, pairs, edges, bipartite_components, odd_cycle_components| PromptGraph {
            responses,
            pairs,
            edges,
            bipartite_components,
            odd_cycle_components,
        };
        assert_eq!(
            g.prompts,
            [
                graph(3, 3, 3, 0, 1),
                graph(3, 3, 2, 1, 0),
                graph(2, 2, 1, 1, 0),
                graph(4, 2, 2, 2, 0),
                graph(7, 7, 7, 1, 1)
            ]
        );
        assert_eq!((g.duplicates, g.contradictions), (1, 1));
    }
}
